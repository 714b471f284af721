"""The simulator's vocabulary: GitHub audit-log actions, the raw schema, scenario names, clients, places, names.

Every action is a real GitHub audit-log action; other modules look actions up by integer code.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

#: action -> (operation_type, channel, scope). The channel decides transport, token and user agent
#: (`git` client, `web`/API request, or a `system` event without a client); the scope says whether
#: the event names a repository, only the organization, or neither (enterprise-level settings).
ACTION_CATALOG: dict[str, tuple[str, str, str]] = {
    "git.clone": ("access", "git", "repo"),
    "git.fetch": ("access", "git", "repo"),
    "git.push": ("modify", "git", "repo"),
    "workflows.created_workflow_run": ("create", "system", "repo"),
    "api.request": ("access", "web", "repo"),
    "repo.download_zip": ("access", "web", "repo"),
    "repo.create": ("create", "web", "repo"),
    "repo.access": ("modify", "web", "repo"),
    "repo.add_member": ("modify", "web", "repo"),
    "repo.remove_member": ("remove", "web", "repo"),
    "repo.destroy": ("remove", "web", "repo"),
    "repo.transfer_start": ("transfer", "web", "repo"),
    "repo.transfer_outgoing": ("transfer", "web", "repo"),
    "repo.register_self_hosted_runner": ("create", "web", "repo"),
    "protected_branch.create": ("create", "web", "repo"),
    "protected_branch.destroy": ("remove", "web", "repo"),
    "protected_branch.policy_override": ("modify", "web", "repo"),
    "protected_branch.update_admin_enforced": ("modify", "web", "repo"),
    "protected_branch.update_pull_request_reviews_enforcement_level": ("modify", "web", "repo"),
    "protected_branch.update_required_status_checks_enforcement_level": ("modify", "web", "repo"),
    "repository_ruleset.create": ("create", "web", "repo"),
    "repository_ruleset.update": ("modify", "web", "repo"),
    "repository_ruleset.destroy": ("remove", "web", "repo"),
    "repository_secret_scanning.disable": ("modify", "web", "repo"),
    "repository_secret_scanning_push_protection.disable": ("modify", "web", "repo"),
    "repository_vulnerability_alerts.disable": ("modify", "web", "repo"),
    "hook.create": ("create", "web", "repo"),
    "public_key.create": ("create", "web", "repo"),
    "team.add_repository": ("modify", "web", "repo"),
    "team.add_member": ("modify", "web", "org"),
    "integration_installation.create": ("create", "web", "org"),
    "personal_access_token.request_created": ("create", "web", "org"),
    "org.add_member": ("create", "web", "org"),
    "org.invite_member": ("create", "web", "org"),
    "org.remove_member": ("remove", "web", "org"),
    "org.update_member": ("modify", "web", "org"),
    "org.disable_two_factor_requirement": ("modify", "web", "org"),
    "org.disable_oauth_app_restrictions": ("modify", "web", "org"),
    "audit_log_streaming.update": ("modify", "web", "business"),
    "audit_log_streaming.destroy": ("remove", "web", "business"),
}
ACTIONS: tuple[str, ...] = tuple(ACTION_CATALOG)
#: Every action the simulator can emit (all real GitHub audit-log actions).
SIMULATED_ACTIONS: frozenset[str] = frozenset(ACTIONS)

ATTACK_SCENARIOS: tuple[str, ...] = (
    "mass_clone_before_leaving",
    "stolen_token",
    "protection_tampering",
    "persistence",
    "admin_abuse",
    "slow_access_widening",
    "repo_exfil_transfer",
)
BENIGN_SCENARIOS: tuple[str, ...] = ("benign_team_migration", "benign_admin_review", "benign_new_laptop")
#: Which label an actor-day keeps when two instances touch it (lowest first).
LABEL_PRIORITY = {**{kind: 0 for kind in ATTACK_SCENARIOS}, "benign_admin_review": 1, "benign_new_laptop": 1,
                  "benign_team_migration": 2}

#: The raw events table, in GitHub's own field names and types.
RAW_SCHEMA: pa.Schema = pa.schema(
    [
        ("@timestamp", pa.int64()),
        ("created_at", pa.int64()),
        ("_document_id", pa.string()),
        ("action", pa.string()),
        ("actor", pa.string()),
        ("actor_id", pa.int64()),
        ("actor_ip", pa.string()),
        ("actor_location", pa.struct([("country_code", pa.string())])),
        ("org", pa.string()),
        ("repo", pa.string()),
        ("user", pa.string()),
        ("operation_type", pa.string()),
        ("transport_protocol_name", pa.string()),
        ("programmatic_access_type", pa.string()),
        ("user_agent", pa.string()),
        ("business", pa.string()),
        ("visibility", pa.string()),
        ("permission", pa.string()),
    ]
)

OPERATION_TYPES = ("create", "access", "modify", "remove", "transfer")
_CHANNELS = ("git", "web", "system")
SCOPES = ("repo", "org", "business")
ACTION_CODE = {name: code for code, name in enumerate(ACTIONS)}
ACTION_OP = np.array([OPERATION_TYPES.index(v[0]) for v in ACTION_CATALOG.values()], np.int8)
ACTION_CHANNEL = np.array([_CHANNELS.index(v[1]) for v in ACTION_CATALOG.values()], np.int8)
ACTION_SCOPE = np.array([SCOPES.index(v[2]) for v in ACTION_CATALOG.values()], np.int8)
GIT, WEB, SYSTEM = range(3)

TOKEN_KINDS = ("personal_access_token", "oauth_token", "GitHub App server-to-server token")
TRANSPORTS = ("http", "ssh")
VISIBILITIES = ("public", "private", "internal")
PERMISSIONS = ("admin", "write", "read", "maintain", "triage")
ROLES = ("developer", "admin", "bot", "service_account")
DEVELOPER, ADMIN, BOT, SERVICE = range(4)

_CHROME_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/131.0.0.0 Safari/537.36")
_CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/131.0.0.0 Safari/537.36")
_FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
_SAFARI_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/18.1 Safari/605.1.15")
_EDGE_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0")
#: (git client, browser) pairs of one machine, so a developer's two user agents agree on the OS.
HUMAN_CLIENTS = (
    ("git/2.39.5 (Apple Git-154)", _CHROME_MAC),
    ("git/2.47.1", _SAFARI_MAC),
    ("git/2.47.1.windows.1", _CHROME_WIN),
    ("git/2.45.2.windows.1", _EDGE_WIN),
    ("git/2.43.0", _FIREFOX_LINUX),
    ("JGit/6.10.0", _CHROME_MAC),
)
NEW_LAPTOP_GIT = "git/2.48.1"
THIEF_AGENTS = ("python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1")
_MACHINE_AGENTS = ("git/2.47.1", "dependabot-core", "Renovate Bot", "GitHub-Actions", "python-requests/2.32.3",
                   "Go-http-client/2.0")
USER_AGENTS: tuple[str, ...] = tuple(
    dict.fromkeys([ua for pair in HUMAN_CLIENTS for ua in pair] + [NEW_LAPTOP_GIT, *THIEF_AGENTS, *_MACHINE_AGENTS])
)
UA_CODE = {ua: code for code, ua in enumerate(USER_AGENTS)}

#: (UTC offset in hours, share of people, countries on that offset). DST is ignored.
ZONES = (
    (-8.0, 0.18, ("US", "CA")),
    (-5.0, 0.24, ("US", "CA")),
    (0.0, 0.14, ("GB", "IE", "PT")),
    (1.0, 0.20, ("DE", "FR", "NL", "PL", "ES")),
    (5.5, 0.14, ("IN",)),
    (8.0, 0.10, ("SG", "PH", "MY")),
)
#: First octets of plausible public address space per country (residential, office, foreign VPS).
IP_FIRST_OCTETS = {
    "US": (24, 71, 73, 98, 174), "CA": (70, 99, 142), "GB": (81, 86, 90), "IE": (78, 86, 89),
    "PT": (85, 89, 94), "DE": (79, 84, 91, 93), "FR": (82, 86, 90), "NL": (77, 83, 145),
    "PL": (83, 89, 178), "ES": (79, 83, 88), "IN": (49, 106, 117), "SG": (116, 119, 175),
    "PH": (112, 120, 180), "MY": (115, 175, 203), "RU": (5, 31, 95), "NG": (41, 105, 197),
    "BR": (177, 179, 187), "VN": (14, 103, 113), "RO": (5, 86, 188), "UA": (37, 91, 176),
    "ID": (36, 110, 180),
}
DATACENTER_OCTETS = (4, 13, 20, 40, 52)
THIEF_COUNTRIES = ("RU", "NG", "BR", "VN", "RO", "UA", "ID")

FIRST_NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "kai", "lena",
    "mallory", "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "uma", "victor", "wendy",
    "xavier", "yara", "zoe", "arjun", "priya", "wei", "mei", "hiro", "yuki", "lars", "ingrid", "pablo",
    "lucia", "omar", "fatima", "sean", "aoife",
)
LAST_NAMES = (
    "smith", "chen", "garcia", "mueller", "kumar", "nguyen", "okafor", "rossi", "dubois", "kowalski",
    "tanaka", "silva", "oconnor", "patel", "santos", "novak", "ivanova", "johansson", "haddad", "reyes",
    "kim", "lopez", "schmidt", "wang", "singh", "murphy", "costa", "meyer", "yilmaz", "fernandez",
    "brown", "li", "sato", "jensen", "moreau", "alvarez", "sharma", "walsh", "ortiz", "becker",
)
TEAM_NAMES = (
    "payments", "identity", "search", "platform", "data", "mobile", "infra", "web", "billing", "ml",
    "growth", "security", "checkout", "notifications", "analytics", "devex", "catalog", "messaging",
    "ledger", "maps",
)
REPO_SUFFIXES = (
    "api", "service", "web", "worker", "infra", "docs", "sdk", "cli", "config", "pipeline", "ui",
    "gateway", "jobs", "schemas", "deploy", "tests",
)
NEW_REPO_WORDS = ("prototype", "spike", "poc", "tools", "experiments", "playground", "demo", "scripts")
