"""Scenario kinds, one function each: labelled attacks and their benign look-alikes injected into the routine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from github_ueba.sources.simulator.batches import Injection
from github_ueba.sources.simulator.catalog import (
    ADMIN,
    DEVELOPER,
    NEW_LAPTOP_GIT,
    THIEF_AGENTS,
    THIEF_COUNTRIES,
    VISIBILITIES,
)
from github_ueba.sources.simulator.scripted import burst, scripted, work_hours
from github_ueba.sources.simulator.world import World


@dataclass
class Instance:
    """One planned scenario instance: who, which local day, and scenario-specific numbers."""

    kind: str
    actor: int  # person index (team index for team migration)
    day: int  # local day index of the first affected day
    length: int = 1  # affected days
    other: int = -1  # removal day (mass clone), target team (migration), variant (others)


def _mass_clone_before_leaving(world: World, rng: np.random.Generator, inst: Instance) -> Injection:
    """A developer clones and downloads most repos over 1-2 days, then an admin removes them."""
    out = Injection()
    person, removal = inst.actor, inst.other
    count = max(8, int(0.7 * world.n_base_repos))
    targets = rng.permutation(world.n_base_repos)[:count]
    for k, chunk in enumerate(np.array_split(targets, inst.length)):
        zips = chunk[rng.random(len(chunk)) < 0.3]
        repos = np.concatenate([chunk, zips])
        actions = ["git.clone"] * len(chunk) + ["repo.download_zip"] * len(zips)
        start = world.hour_lo[person] + rng.uniform(1.0, world.hour_span[person] - 2.0)
        hours = burst(rng, start, len(repos), 2.0)
        order = rng.permutation(len(repos))
        out.add(scripted(world, person, inst.day + k, hours, [actions[i] for i in order], repos[order]),
                "mass_clone_before_leaving")
    admin = int(rng.choice(world.people_of(ADMIN)))
    out.add(scripted(world, admin, removal, work_hours(world, rng, admin, 1), "org.remove_member", users=person))
    return out


def _stolen_token(world: World, rng: np.random.Generator, inst: Instance) -> Injection:
    """The developer's token clones and downloads repos from a new country at 3 a.m. their time."""
    out = Injection()
    person = inst.actor
    country = str(rng.choice([c for c in THIEF_COUNTRIES if c != world.country[person]]))
    ip = int(world.add_ips(rng, [country])[0])
    clones = rng.permutation(world.n_base_repos)[: int(rng.integers(12, 26))]
    zips = rng.choice(clones, size=min(len(clones), int(rng.integers(3, 7))), replace=False)
    repos = np.concatenate([clones, zips])
    actions = ["git.clone"] * len(clones) + ["repo.download_zip"] * len(zips)
    hours = burst(rng, rng.uniform(2.5, 3.5), len(repos), 1.5)
    out.add(scripted(world, person, inst.day, hours, actions, repos, ip=ip, ua=str(rng.choice(THIEF_AGENTS)),
                     token="personal_access_token", transport="http"), "stolen_token")
    return out


def _protection_tampering(world: World, rng: np.random.Generator, inst: Instance) -> Injection:
    """A developer who never touches settings overrides and tears down branch and secret protection."""
    out = Injection()
    person = inst.actor
    main_repo = int(world.candidates[person, 0])
    second = int(rng.choice(world.team_repos(int(world.team[person]))))
    actions = [
        "protected_branch.policy_override", "protected_branch.destroy", "repository_ruleset.destroy",
        "repository_secret_scanning_push_protection.disable", "repository_secret_scanning.disable",
        "git.push", "protected_branch.destroy", "repository_vulnerability_alerts.disable",
    ]
    repos = [main_repo] * 6 + [second, second]
    keep = len(actions) if inst.other % 2 == 0 else 6
    hours = burst(rng, world.hour_lo[person] + world.hour_span[person] + rng.uniform(-1.0, 1.0), keep, 3.0)
    out.add(scripted(world, person, inst.day, hours, actions[:keep], repos[:keep]), "protection_tampering")
    return out


def _persistence(world: World, rng: np.random.Generator, inst: Instance) -> Injection:
    """A developer plants a deploy key, a webhook, an app and a self-hosted runner in others' repos."""
    out = Injection()
    person = inst.actor
    foreign = world.foreign_repos(rng, person, 3)
    actions = ["git.clone", "public_key.create", "hook.create", "integration_installation.create",
               "repo.register_self_hosted_runner"]
    repos = [foreign[0], foreign[0], foreign[1], -1, foreign[2]]
    hours = burst(rng, world.hour_lo[person] + world.hour_span[person] + rng.uniform(0.5, 2.5), len(actions), 6.0)
    out.add(scripted(world, person, inst.day, hours, actions, repos), "persistence")
    return out


def _admin_abuse(world: World, rng: np.random.Generator, inst: Instance) -> Injection:
    """An admin weakens the org late at night: 2FA, OAuth restrictions, a new owner, streaming, a repo public."""
    out = Injection()
    admin = inst.actor
    accomplice = int(rng.choice(world.people_of(DEVELOPER)))
    private = np.flatnonzero(np.asarray(world.repo_visibility[: world.n_base_repos]) == VISIBILITIES.index("private"))
    exposed = int(rng.choice(private if len(private) else np.arange(world.n_base_repos)))
    streaming = "audit_log_streaming.destroy" if inst.other % 2 == 0 else "audit_log_streaming.update"
    actions = ["org.disable_two_factor_requirement", "org.disable_oauth_app_restrictions", "org.update_member",
               streaming, "repo.access"]
    hours = burst(rng, rng.uniform(22.0, 23.0), len(actions), 4.0)
    out.add(scripted(world, admin, inst.day, hours, actions, [-1, -1, -1, -1, exposed],
                     users=[-1, -1, accomplice, -1, -1], permission=[-1, -1, "admin", -1, -1],
                     visibility=[-1, -1, -1, -1, "public"]), "admin_abuse")
    return out


def _slow_access_widening(world: World, rng: np.random.Generator, inst: Instance) -> Injection:
    """A developer reaches a few never-seen repos a day for ~10 days, then downloads them."""
    out = Injection()
    person = inst.actor
    per_day = rng.integers(2, 4, inst.length)
    reached = world.foreign_repos(rng, person, int(per_day.sum()))
    chunks = np.split(reached, np.cumsum(per_day)[:-1])
    for k, chunk in enumerate(chunks):
        fetches = rng.choice(chunk, size=int(rng.integers(0, 3)))
        repos = np.concatenate([chunk, fetches])
        actions = ["git.clone"] * len(chunk) + ["git.fetch"] * len(fetches)
        if k == len(chunks) - 1:
            zips = rng.permutation(np.unique(reached))[: int(rng.integers(5, 9))]
            repos = np.concatenate([repos, zips])
            actions += ["repo.download_zip"] * len(zips)
        hours = work_hours(world, rng, person, len(repos))
        out.add(scripted(world, person, inst.day + k, hours, actions, repos), "slow_access_widening")
    return out


def _repo_exfil_transfer(world: World, rng: np.random.Generator, inst: Instance) -> Injection:
    """A developer mirrors a repo, then transfers it out of the org (or downloads and destroys it)."""
    out = Injection()
    person = inst.actor
    repo = int(rng.choice(world.candidates[person]))
    if inst.other % 2 == 0:
        actions = ["git.clone", "repo.transfer_start", "repo.transfer_outgoing"]
    else:
        actions = ["git.clone", "repo.download_zip", "repo.destroy"]
    hours = burst(rng, world.hour_lo[person] + rng.uniform(0.5, world.hour_span[person] - 1.0), len(actions), 8.0)
    batch = scripted(world, person, inst.day, hours, actions, repo)
    out.add(batch, "repo_exfil_transfer")
    if len(batch):
        out.repo_cuts.append((repo, int(batch.ts.max())))
    return out


def _benign_team_migration(world: World, rng: np.random.Generator, inst: Instance) -> Injection:
    """A reorg: every member of a team clones another team's repos on the same day."""
    out = Injection()
    source, target = inst.actor, inst.other
    members = np.flatnonzero((world.team == source) & (world.start_day <= inst.day) & (world.end_day >= inst.day))
    repos = world.team_repos(target)
    admin = int(rng.choice(world.people_of(ADMIN)))
    out.add(scripted(world, admin, max(inst.day - 1, 0), work_hours(world, rng, admin, len(repos)),
                     "team.add_repository", repos))
    for member in members:
        mine = np.concatenate([repos, rng.choice(repos, size=int(rng.integers(0, len(repos) + 1)))])
        actions = ["git.clone"] * len(repos) + ["git.fetch"] * (len(mine) - len(repos))
        out.add(scripted(world, int(member), inst.day, work_hours(world, rng, int(member), len(mine)), actions, mine),
                "benign_team_migration")
    return out


def _benign_admin_review(world: World, rng: np.random.Generator, inst: Instance) -> Injection:
    """A planned access review: an admin changes many memberships and branch rules in one day."""
    out = Injection()
    admin = inst.actor
    n = int(rng.integers(20, 41))
    menu = np.array(["org.update_member", "repo.add_member", "repo.remove_member", "team.add_member",
                     "protected_branch.update_pull_request_reviews_enforcement_level", "protected_branch.create"])
    actions = menu[rng.choice(len(menu), n, p=[0.3, 0.25, 0.15, 0.1, 0.1, 0.1])]
    developers = world.people_of(DEVELOPER)
    users = np.where(np.isin(actions, menu[:4]), rng.choice(developers, n), -1)
    permission = np.where(actions == "org.update_member", rng.choice(["read", "admin"], n, p=[0.9, 0.1]),
                          np.where(actions == "repo.add_member", rng.choice(["write", "read", "maintain"], n), ""))
    repos = np.where(actions == "org.update_member", -1, rng.integers(0, world.n_base_repos, n))
    start = world.hour_lo[admin] + rng.uniform(0.5, 3.0)
    hours = burst(rng, start, n, 6.0)
    out.add(scripted(world, admin, inst.day, hours, actions.tolist(), repos, users=users,
                     permission=[p or -1 for p in permission.tolist()]), "benign_admin_review")
    return out


def _benign_new_laptop(world: World, rng: np.random.Generator, inst: Instance) -> Injection:
    """A developer sets up a new laptop: new SSH key, re-clones their usual repos from a new home IP."""
    out = Injection()
    person = inst.actor
    ip = int(world.add_ips(rng, [world.country[person]])[0])
    repos = np.unique(world.candidates[person])
    actions = ["public_key.create"] + ["git.clone"] * len(repos)
    hours = burst(rng, world.hour_lo[person] + rng.uniform(0.5, 3.0), len(actions), 4.0)
    out.add(scripted(world, person, inst.day, hours, actions, np.concatenate([[-1], repos]), ip=ip,
                     ua=NEW_LAPTOP_GIT), "benign_new_laptop")
    return out


SCENARIO_FUNCTIONS: dict[str, Callable[[World, np.random.Generator, Instance], Injection]] = {
    "mass_clone_before_leaving": _mass_clone_before_leaving,
    "stolen_token": _stolen_token,
    "protection_tampering": _protection_tampering,
    "persistence": _persistence,
    "admin_abuse": _admin_abuse,
    "slow_access_widening": _slow_access_widening,
    "repo_exfil_transfer": _repo_exfil_transfer,
    "benign_team_migration": _benign_team_migration,
    "benign_admin_review": _benign_admin_review,
    "benign_new_laptop": _benign_new_laptop,
}
