"""How each kind of actor behaves day to day: routine action rates, machine schedules and admins' work mix."""

from __future__ import annotations

#: Routine actions: mean count per active day for a developer (admins do 40% of it).
HUMAN_RATES = {
    "git.fetch": 14.0, "git.clone": 1.0, "git.push": 3.0, "workflows.created_workflow_run": 2.0,
    "repo.download_zip": 0.03, "repo.create": 0.008, "public_key.create": 0.003,
    "personal_access_token.request_created": 0.004,
}
#: Extra routine actions of each team's maintainer (branch protection upkeep).
MAINTAINER_RATES = {
    "protected_branch.update_pull_request_reviews_enforcement_level": 0.02,
    "protected_branch.update_required_status_checks_enforcement_level": 0.03,
    "repository_ruleset.update": 0.02,
}
#: Machine accounts: (name, per-repo daily rates, (first UTC hour, hours span), works weekends).
BOT_PROFILES = (
    ("ci-runner[bot]", {"git.clone": 1.0, "git.fetch": 2.0}, (0.0, 24.0), True),
    ("dependabot[bot]", {"git.clone": 0.15, "git.push": 0.1}, (2.0, 4.0), True),
    ("renovate[bot]", {"git.clone": 0.2, "git.push": 0.1, "git.fetch": 0.3}, (0.0, 24.0), True),
    ("github-actions[bot]", {"git.fetch": 0.8, "git.push": 0.15}, (0.0, 24.0), True),
    ("sonarcloud[bot]", {"git.fetch": 0.6}, (0.0, 24.0), True),
    ("release-please[bot]", {"git.fetch": 0.2, "git.push": 0.05}, (0.0, 24.0), True),
)
SERVICE_PROFILES = (
    ("svc-deploy", {"git.fetch": 0.8, "git.clone": 0.2}, (14.0, 10.0), False),
    ("svc-backup", {"git.fetch": 1.0, "repo.download_zip": 1.0 / 7.0}, (1.0, 3.0), True),
    ("svc-metrics", {"api.request": 0.5, "git.fetch": 0.2}, (0.0, 24.0), True),
)
MACHINE_AGENT = {
    "ci-runner[bot]": "git/2.47.1", "dependabot[bot]": "dependabot-core", "renovate[bot]": "Renovate Bot",
    "github-actions[bot]": "GitHub-Actions", "sonarcloud[bot]": "git/2.47.1",
    "release-please[bot]": "GitHub-Actions", "svc-deploy": "Go-http-client/2.0",
    "svc-backup": "python-requests/2.32.3", "svc-metrics": "python-requests/2.32.3",
}
ROUTINE_ACTIONS: tuple[str, ...] = tuple(
    dict.fromkeys([*HUMAN_RATES, *MAINTAINER_RATES, *(a for p in BOT_PROFILES + SERVICE_PROFILES for a in p[1])])
)


#: Admins' routine work: (action, share, permissions with their shares or None, target kind).
ADMIN_ROUTINE = (
    ("org.update_member", 0.15, (("read", 0.85), ("admin", 0.15)), "member"),
    ("repo.add_member", 0.18, (("write", 0.5), ("read", 0.2), ("maintain", 0.15), ("admin", 0.1), ("triage", 0.05)),
     "member"),
    ("team.add_member", 0.18, None, "member"),
    ("team.add_repository", 0.1, None, None),
    ("org.invite_member", 0.07, None, "outsider"),
    ("protected_branch.create", 0.05, None, None),
    ("protected_branch.update_required_status_checks_enforcement_level", 0.05, None, None),
    ("protected_branch.update_admin_enforced", 0.04, None, None),
    ("repository_ruleset.create", 0.05, None, None),
    ("repository_ruleset.update", 0.05, None, None),
    ("hook.create", 0.05, None, None),
    ("integration_installation.create", 0.03, None, None),
)
ADMIN_ACTIONS_PER_DAY = 0.8
