"""Built-in simulated enterprise: a believable GitHub audit log with labelled attacks and look-alikes.

Developers in teams with their own time zones, working hours, weekly rhythm, IPs and repositories;
admins doing rare admin work; CI bots and service accounts running around the clock; hires and
leavers. On top of that routine, one function per scenario kind injects labelled attacks (mass clone
before leaving, stolen token, ...) and benign look-alikes (team migration, admin review, new laptop).
Routine events are drawn per actor-day in numpy arrays (no Python loop per event), so 2,000
developers give about ten million events in seconds. Every action name is a real GitHub audit-log
action, checked against GitHub's "Audit log events for your organization / enterprise" pages.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from github_ueba import io
from github_ueba.config import ConfigError, SimulatorSource

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
_LABEL_PRIORITY = {**{kind: 0 for kind in ATTACK_SCENARIOS}, "benign_admin_review": 1, "benign_new_laptop": 1,
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

_OPERATION_TYPES = ("create", "access", "modify", "remove", "transfer")
_CHANNELS = ("git", "web", "system")
_SCOPES = ("repo", "org", "business")
_ACTION_CODE = {name: code for code, name in enumerate(ACTIONS)}
_ACTION_OP = np.array([_OPERATION_TYPES.index(v[0]) for v in ACTION_CATALOG.values()], np.int8)
_ACTION_CHANNEL = np.array([_CHANNELS.index(v[1]) for v in ACTION_CATALOG.values()], np.int8)
_ACTION_SCOPE = np.array([_SCOPES.index(v[2]) for v in ACTION_CATALOG.values()], np.int8)
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
_HUMAN_CLIENTS = (
    ("git/2.39.5 (Apple Git-154)", _CHROME_MAC),
    ("git/2.47.1", _SAFARI_MAC),
    ("git/2.47.1.windows.1", _CHROME_WIN),
    ("git/2.45.2.windows.1", _EDGE_WIN),
    ("git/2.43.0", _FIREFOX_LINUX),
    ("JGit/6.10.0", _CHROME_MAC),
)
_NEW_LAPTOP_GIT = "git/2.48.1"
_THIEF_AGENTS = ("python-requests/2.31.0", "curl/8.5.0", "Go-http-client/1.1")
_MACHINE_AGENTS = ("git/2.47.1", "dependabot-core", "Renovate Bot", "GitHub-Actions", "python-requests/2.32.3",
                   "Go-http-client/2.0")
USER_AGENTS: tuple[str, ...] = tuple(
    dict.fromkeys([ua for pair in _HUMAN_CLIENTS for ua in pair] + [_NEW_LAPTOP_GIT, *_THIEF_AGENTS, *_MACHINE_AGENTS])
)
_UA_CODE = {ua: code for code, ua in enumerate(USER_AGENTS)}

#: (UTC offset in hours, share of people, countries on that offset). DST is ignored.
_ZONES = (
    (-8.0, 0.18, ("US", "CA")),
    (-5.0, 0.24, ("US", "CA")),
    (0.0, 0.14, ("GB", "IE", "PT")),
    (1.0, 0.20, ("DE", "FR", "NL", "PL", "ES")),
    (5.5, 0.14, ("IN",)),
    (8.0, 0.10, ("SG", "PH", "MY")),
)
#: First octets of plausible public address space per country (residential, office, foreign VPS).
_IP_FIRST_OCTETS = {
    "US": (24, 71, 73, 98, 174), "CA": (70, 99, 142), "GB": (81, 86, 90), "IE": (78, 86, 89),
    "PT": (85, 89, 94), "DE": (79, 84, 91, 93), "FR": (82, 86, 90), "NL": (77, 83, 145),
    "PL": (83, 89, 178), "ES": (79, 83, 88), "IN": (49, 106, 117), "SG": (116, 119, 175),
    "PH": (112, 120, 180), "MY": (115, 175, 203), "RU": (5, 31, 95), "NG": (41, 105, 197),
    "BR": (177, 179, 187), "VN": (14, 103, 113), "RO": (5, 86, 188), "UA": (37, 91, 176),
    "ID": (36, 110, 180),
}
_DATACENTER_OCTETS = (4, 13, 20, 40, 52)
_THIEF_COUNTRIES = ("RU", "NG", "BR", "VN", "RO", "UA", "ID")

_FIRST_NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "kai", "lena",
    "mallory", "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "uma", "victor", "wendy",
    "xavier", "yara", "zoe", "arjun", "priya", "wei", "mei", "hiro", "yuki", "lars", "ingrid", "pablo",
    "lucia", "omar", "fatima", "sean", "aoife",
)
_LAST_NAMES = (
    "smith", "chen", "garcia", "mueller", "kumar", "nguyen", "okafor", "rossi", "dubois", "kowalski",
    "tanaka", "silva", "oconnor", "patel", "santos", "novak", "ivanova", "johansson", "haddad", "reyes",
    "kim", "lopez", "schmidt", "wang", "singh", "murphy", "costa", "meyer", "yilmaz", "fernandez",
    "brown", "li", "sato", "jensen", "moreau", "alvarez", "sharma", "walsh", "ortiz", "becker",
)
_TEAM_NAMES = (
    "payments", "identity", "search", "platform", "data", "mobile", "infra", "web", "billing", "ml",
    "growth", "security", "checkout", "notifications", "analytics", "devex", "catalog", "messaging",
    "ledger", "maps",
)
_REPO_SUFFIXES = (
    "api", "service", "web", "worker", "infra", "docs", "sdk", "cli", "config", "pipeline", "ui",
    "gateway", "jobs", "schemas", "deploy", "tests",
)
_NEW_REPO_WORDS = ("prototype", "spike", "poc", "tools", "experiments", "playground", "demo", "scripts")

#: Routine actions: mean count per active day for a developer (admins do 40% of it).
_HUMAN_RATES = {
    "git.fetch": 14.0, "git.clone": 1.0, "git.push": 3.0, "workflows.created_workflow_run": 2.0,
    "repo.download_zip": 0.03, "repo.create": 0.008, "public_key.create": 0.003,
    "personal_access_token.request_created": 0.004,
}
#: Extra routine actions of each team's maintainer (branch protection upkeep).
_MAINTAINER_RATES = {
    "protected_branch.update_pull_request_reviews_enforcement_level": 0.02,
    "protected_branch.update_required_status_checks_enforcement_level": 0.03,
    "repository_ruleset.update": 0.02,
}
#: Machine accounts: (name, per-repo daily rates, (first UTC hour, hours span), works weekends).
_BOT_PROFILES = (
    ("ci-runner[bot]", {"git.clone": 1.0, "git.fetch": 2.0}, (0.0, 24.0), True),
    ("dependabot[bot]", {"git.clone": 0.15, "git.push": 0.1}, (2.0, 4.0), True),
    ("renovate[bot]", {"git.clone": 0.2, "git.push": 0.1, "git.fetch": 0.3}, (0.0, 24.0), True),
    ("github-actions[bot]", {"git.fetch": 0.8, "git.push": 0.15}, (0.0, 24.0), True),
    ("sonarcloud[bot]", {"git.fetch": 0.6}, (0.0, 24.0), True),
    ("release-please[bot]", {"git.fetch": 0.2, "git.push": 0.05}, (0.0, 24.0), True),
)
_SERVICE_PROFILES = (
    ("svc-deploy", {"git.fetch": 0.8, "git.clone": 0.2}, (14.0, 10.0), False),
    ("svc-backup", {"git.fetch": 1.0, "repo.download_zip": 1.0 / 7.0}, (1.0, 3.0), True),
    ("svc-metrics", {"api.request": 0.5, "git.fetch": 0.2}, (0.0, 24.0), True),
)
_MACHINE_AGENT = {
    "ci-runner[bot]": "git/2.47.1", "dependabot[bot]": "dependabot-core", "renovate[bot]": "Renovate Bot",
    "github-actions[bot]": "GitHub-Actions", "sonarcloud[bot]": "git/2.47.1",
    "release-please[bot]": "GitHub-Actions", "svc-deploy": "Go-http-client/2.0",
    "svc-backup": "python-requests/2.32.3", "svc-metrics": "python-requests/2.32.3",
}
_ROUTINE_ACTIONS: tuple[str, ...] = tuple(
    dict.fromkeys([*_HUMAN_RATES, *_MAINTAINER_RATES, *(a for p in _BOT_PROFILES + _SERVICE_PROFILES for a in p[1])])
)
_ROUTINE_CODES = np.array([_ACTION_CODE[a] for a in _ROUTINE_ACTIONS], np.int16)
_CANDIDATE, _NO_REPO, _NEW_REPO = range(3)
_REPOLESS_ROUTINE = ("public_key.create", "personal_access_token.request_created")  # a user's key, a token request
_ROUTINE_REPO_MODE = np.array(
    [_NEW_REPO if a == "repo.create" else _NO_REPO if a in _REPOLESS_ROUTINE else _CANDIDATE for a in _ROUTINE_ACTIONS],
    np.int8,
)
#: Admins' routine work: (action, share, permissions with their shares or None, target kind).
_ADMIN_ROUTINE = (
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
_ADMIN_ACTIONS_PER_DAY = 0.8
_OUTSIDERS = 30  # handles outside the org that admins invite


# --------------------------------------------------------------------------------------------------
# Public result
# --------------------------------------------------------------------------------------------------


@dataclass
class SimulatedEnterprise:
    """A simulated audit log (`raw`, GitHub field names), its labels, and who is who (`actors`)."""

    raw: pa.Table
    labels: pd.DataFrame  # actor, day (UTC midnight, tz-naive), scenario ("benign_" prefix = look-alike)
    actors: pd.DataFrame  # actor, actor_id, role, team, maintainer, utc_offset, country, joined, left

    def write_ndjson(self, path: str | Path, omit_nulls: bool = True) -> Path:
        """Write the raw events as GitHub-export NDJSON (`.gz` suffix: gzip); see `write_ndjson`."""
        return write_ndjson(self.raw, path, omit_nulls=omit_nulls)


def write_ndjson(table: pa.Table, path: str | Path, omit_nulls: bool = True) -> Path:
    """Write audit events as NDJSON through DuckDB `COPY`, atomically; gzip when the name ends in `.gz`.

    With `omit_nulls` (default) a null field is left out of its line, as in GitHub's exports; each
    line is then assembled in SQL from the columns (about as fast as DuckDB's own JSON writer, which
    `omit_nulls=False` uses and which writes nulls as `null`).
    """
    target = Path(path)
    compression = "gzip" if target.suffix == ".gz" else "none"
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("raw_events", table)
        with io.atomic_path(target) as tmp:
            tmp_sql = str(tmp).replace("'", "''")
            if omit_nulls:
                line = _ndjson_line_sql(table.schema)
                con.execute(
                    f"COPY (SELECT {line} FROM raw_events) TO '{tmp_sql}' "
                    f"(FORMAT CSV, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x1f', COMPRESSION {compression})"
                )
            else:
                con.execute(f"COPY (SELECT * FROM raw_events) TO '{tmp_sql}' (FORMAT JSON, COMPRESSION {compression})")
    except (duckdb.Error, OSError) as err:
        raise OSError(f"{target}: cannot write NDJSON: {err}") from err
    finally:
        con.close()
    return target


def _ndjson_line_sql(schema: pa.Schema) -> str:
    """SQL building one JSON object per row that leaves null fields out (concat_ws skips NULLs).

    The lines are written with the CSV writer under a delimiter and quote that JSON text never holds
    raw (U+001F, none), so they come out verbatim.
    """
    pieces = []
    for f in schema:
        column = '"' + f.name.replace('"', '""') + '"'
        key = json.dumps(f.name).replace("'", "''")
        if pa.types.is_integer(f.type):
            value = f"CAST({column} AS VARCHAR)"
        elif pa.types.is_struct(f.type):
            value = f"json_strip_nulls(to_json({column}))"
        else:
            value = f"to_json({column})"
        pieces.append(f"'{key}:' || {value}")
    return "'{' || concat_ws(',', " + ", ".join(pieces) + ") || '}'"


# --------------------------------------------------------------------------------------------------
# Events as integer codes
# --------------------------------------------------------------------------------------------------


@dataclass
class _EventBatch:
    """Events as parallel code arrays (indexes into the world's vocabularies; -1 = null)."""

    ts: np.ndarray  # int64 epoch ms UTC
    person: np.ndarray  # int32 index into world.names
    action: np.ndarray  # int16 index into ACTIONS
    repo: np.ndarray  # int32 index into world.repos
    user: np.ndarray  # int32 index into world.names (the user acted upon)
    ip: np.ndarray  # int32 index into world.ips
    ua: np.ndarray  # int16 index into USER_AGENTS
    token: np.ndarray  # int8 index into TOKEN_KINDS
    transport: np.ndarray  # int8 index into TRANSPORTS
    visibility: np.ndarray  # int8 index into VISIBILITIES
    permission: np.ndarray  # int8 index into PERMISSIONS

    def __len__(self) -> int:
        return len(self.ts)

    def select(self, index: np.ndarray) -> _EventBatch:
        """The events at `index` (an integer or boolean array)."""
        return _EventBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(batches: Sequence[_EventBatch]) -> _EventBatch:
        """All events of `batches`, in order."""
        return _EventBatch(**{f.name: np.concatenate([getattr(b, f.name) for b in batches])
                              for f in fields(_EventBatch)})


@dataclass
class _Injection:
    """What one scenario adds: event batches, labelled batches, and repos gone after a moment."""

    events: list[_EventBatch] = field(default_factory=list)
    labelled: list[tuple[_EventBatch, str]] = field(default_factory=list)
    repo_cuts: list[tuple[int, int]] = field(default_factory=list)  # (repo, epoch ms after which it is gone)

    def add(self, batch: _EventBatch, scenario: str | None = None) -> None:
        """Add events; label their actor-days with `scenario` when given."""
        self.events.append(batch)
        if scenario is not None and len(batch):
            self.labelled.append((batch, scenario))

    def extend(self, other: _Injection) -> None:
        """Merge another injection into this one."""
        self.events += other.events
        self.labelled += other.labelled
        self.repo_cuts += other.repo_cuts


@dataclass
class _Instance:
    """One planned scenario instance: who, which local day, and scenario-specific numbers."""

    kind: str
    actor: int  # person index (team index for team migration)
    day: int  # local day index of the first affected day
    length: int = 1  # affected days
    other: int = -1  # removal day (mass clone), target team (migration), variant (others)


# --------------------------------------------------------------------------------------------------
# The world: people, repositories, addresses
# --------------------------------------------------------------------------------------------------


@dataclass
class _World:
    """Who is who and what exists: per-person profile arrays, repositories, IP addresses."""

    cfg: SimulatorSource
    t0_ms: int
    days: int
    weekday0: int
    names: np.ndarray  # people first, then outside handles (only ever a `user`)
    n_people: int
    role: np.ndarray
    actor_id: np.ndarray
    team: np.ndarray
    maintainer: np.ndarray
    offset: np.ndarray  # UTC offset in hours
    country: np.ndarray  # home country code
    hour_lo: np.ndarray  # local hour the working day starts
    hour_span: np.ndarray  # hours in the working day
    evening_share: np.ndarray
    human: np.ndarray
    start_day: np.ndarray  # first employed local day
    end_day: np.ndarray  # last employed local day
    weekday_prob: np.ndarray
    weekend_prob: np.ndarray
    vacation_start: np.ndarray
    vacation_len: np.ndarray
    day_noise_shape: np.ndarray
    rates: np.ndarray  # [person, routine action] mean count per active day
    git_ua: np.ndarray
    web_ua: np.ndarray
    git_token: np.ndarray
    web_token: np.ndarray
    transport: np.ndarray
    candidates: np.ndarray  # [person, K] usual repos, in the person's order of preference
    ip_table: np.ndarray  # [person, 8] usual IPs (-1 pad); column 0 is the main one
    ip_count: np.ndarray  # usual IPs per person
    ip_main_share: np.ndarray  # share of events from the main IP (the rest spread evenly)
    team_names: np.ndarray
    repos: list[str]
    repo_team: list[int]
    repo_visibility: list[int]
    n_base_repos: int
    ips: list[str]
    ip_country: list[str]

    @property
    def end_ms(self) -> int:
        """Epoch ms just after the last simulated UTC day."""
        return self.t0_ms + self.days * DAY_MS

    def people_of(self, role: int) -> np.ndarray:
        """Person indexes with `role`."""
        return np.flatnonzero(self.role == role)

    def add_ips(self, rng: np.random.Generator, countries: Sequence[str] | np.ndarray,
                datacenter: bool = False) -> np.ndarray:
        """Register new random public IPs in `countries`; return their codes."""
        countries = np.asarray(countries, dtype=str)
        n = len(countries)
        first = np.asarray(_DATACENTER_OCTETS)[rng.integers(0, len(_DATACENTER_OCTETS), n)]
        if not datacenter:
            for country in np.unique(countries):
                here = countries == country
                first[here] = rng.choice(_IP_FIRST_OCTETS[str(country)], int(here.sum()))
        octets = [first, rng.integers(0, 256, n), rng.integers(0, 256, n), rng.integers(1, 255, n)]
        text = octets[0].astype(str)
        for part in octets[1:]:
            text = np.char.add(np.char.add(text, "."), part.astype(str))
        start = len(self.ips)
        self.ips.extend(text.tolist())
        self.ip_country.extend(countries.tolist())
        return np.arange(start, start + n, dtype=np.int32)

    def add_repos(self, names: Sequence[str], teams: Sequence[int], visibility: Sequence[int]) -> np.ndarray:
        """Register repositories created during the window; return their codes."""
        start = len(self.repos)
        self.repos.extend(names)
        self.repo_team.extend(int(t) for t in teams)
        self.repo_visibility.extend(int(v) for v in visibility)
        return np.arange(start, start + len(names), dtype=np.int32)

    def team_repos(self, team: int) -> np.ndarray:
        """The base repositories of `team`."""
        per = self.cfg.repos_per_team
        return np.arange(team * per, (team + 1) * per, dtype=np.int32)

    def foreign_repos(self, rng: np.random.Generator, person: int, n: int) -> np.ndarray:
        """`n` base repositories outside `person`'s usual set, in random order (reused if too few exist)."""
        unseen = np.setdiff1d(np.arange(self.n_base_repos, dtype=np.int32), self.candidates[person])
        if not len(unseen):
            unseen = np.flatnonzero(np.asarray(self.repo_team[: self.n_base_repos]) != self.team[person])
        return np.resize(rng.permutation(unseen), n).astype(np.int32)

    def weekday(self, day: np.ndarray | int) -> np.ndarray | int:
        """Local weekday (Monday = 0) of a local day index."""
        return (self.weekday0 + day) % 7


def _handles(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` unique GitHub-like handles (jane-doe, jdoe, janedoe42)."""
    first_index = rng.integers(0, len(_FIRST_NAMES), n)
    first = np.asarray(_FIRST_NAMES)[first_index]
    initial = np.asarray([name[0] for name in _FIRST_NAMES])[first_index]
    last = np.asarray(_LAST_NAMES)[rng.integers(0, len(_LAST_NAMES), n)]
    style = rng.integers(0, 3, n)
    digits = rng.integers(10, 100, n).astype(str)
    dashed = np.char.add(np.char.add(first, "-"), last)
    joined = np.char.add(np.char.add(first, last), digits)
    handle = np.where(style == 0, dashed, np.where(style == 1, np.char.add(initial, last), joined))
    series = pd.Series(handle)
    repeat = series.groupby(series).cumcount().to_numpy()
    return np.where(repeat > 0, np.char.add(np.char.add(handle, "-"), repeat.astype(str)), handle)


def _machine_roster(profiles: tuple, n: int, extra_name: str) -> tuple[list[str], list[int]]:
    """Names and profile indexes of `n` machine accounts: the listed profiles, then numbered copies."""
    names = [p[0] for p in profiles[:n]]
    names += [extra_name.format(k=k) for k in range(2, 2 + n - len(names))]
    return names, [i if i < len(profiles) else 0 for i in range(n)]


def _repositories(cfg: SimulatorSource, rng: np.random.Generator) -> tuple[np.ndarray, list[str], list[int], list[int]]:
    """Team names and `org/team-suffix` repositories with their team and visibility."""
    base = np.asarray(_TEAM_NAMES)[np.arange(cfg.n_teams) % len(_TEAM_NAMES)]
    rounds = np.arange(cfg.n_teams) // len(_TEAM_NAMES)
    team_names = np.where(rounds > 0, np.char.add(base, (rounds + 1).astype(str)), base)
    per = cfg.repos_per_team
    suffix = np.asarray(_REPO_SUFFIXES)[np.arange(per) % len(_REPO_SUFFIXES)]
    suffix_round = np.arange(per) // len(_REPO_SUFFIXES)
    suffix = np.where(suffix_round > 0, np.char.add(suffix, (suffix_round + 1).astype(str)), suffix)
    names = np.char.add(np.char.add(f"{cfg.org}/", np.repeat(team_names, per)),
                        np.char.add("-", np.tile(suffix, cfg.n_teams)))
    visibility = rng.choice(len(VISIBILITIES), size=len(names), p=[0.05, 0.75, 0.2])
    return team_names, names.tolist(), np.repeat(np.arange(cfg.n_teams), per).tolist(), visibility.tolist()


def _build_world(cfg: SimulatorSource, rng: np.random.Generator) -> _World:
    """Draw the population, repositories and addresses."""
    end = dt.date.fromisoformat(cfg.end)
    first_day = end - dt.timedelta(days=cfg.days - 1)
    t0_ms = int(dt.datetime(first_day.year, first_day.month, first_day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)
    bot_names, bot_profiles = _machine_roster(_BOT_PROFILES, cfg.n_bots, "ci-runner-{k}[bot]")
    svc_names, svc_profiles = _machine_roster(_SERVICE_PROFILES, cfg.n_service_accounts, "svc-sync-{k}")
    n_humans = cfg.n_developers + cfg.n_admins
    handles = _handles(rng, n_humans + _OUTSIDERS)
    names = np.concatenate([handles[:n_humans], np.asarray(bot_names + svc_names, dtype=str), handles[n_humans:]])
    n_people = n_humans + len(bot_names) + len(svc_names)
    role = np.repeat(np.array([DEVELOPER, ADMIN, BOT, SERVICE], np.int8),
                     [cfg.n_developers, cfg.n_admins, len(bot_names), len(svc_names)])
    human = role <= ADMIN
    actor_id = (1_000_000 + np.cumsum(rng.integers(1, 40_000, n_people))).astype(np.int64)[rng.permutation(n_people)]

    team_names, repos, repo_team, repo_visibility = _repositories(cfg, rng)
    n_repos = len(repos)
    team = np.full(n_people, -1, np.int32)
    n_dev = cfg.n_developers
    spread = np.arange(n_dev) % cfg.n_teams
    sizes = rng.dirichlet(np.full(cfg.n_teams, 4.0))
    team[:n_dev] = np.where(np.arange(n_dev) < 2 * cfg.n_teams, spread, rng.choice(cfg.n_teams, n_dev, p=sizes))
    team[:n_dev] = team[:n_dev][rng.permutation(n_dev)]
    maintainer = np.zeros(n_people, bool)
    order = rng.permutation(n_dev)
    _, first_of_team = np.unique(team[order], return_index=True)
    maintainer[order[first_of_team]] = True

    zone_weights = np.array([z[1] for z in _ZONES])
    team_zone = rng.choice(len(_ZONES), cfg.n_teams, p=zone_weights / zone_weights.sum())
    own_zone = rng.choice(len(_ZONES), n_people, p=zone_weights / zone_weights.sum())
    zone = np.where((team >= 0) & (rng.random(n_people) < 0.75), team_zone[np.maximum(team, 0)], own_zone)
    zone_countries = np.array([np.resize(z[2], 5) for z in _ZONES], dtype="<U2")  # 5 slots, countries repeated
    country = zone_countries[zone, rng.integers(0, 5, n_people)]
    offset = np.array([z[0] for z in _ZONES])[zone]
    country[~human] = "US"
    offset[~human] = 0.0

    machine_profile = [_BOT_PROFILES[i] for i in bot_profiles] + [_SERVICE_PROFILES[i] for i in svc_profiles]
    hour_lo = np.clip(rng.normal(9.0, 0.8, n_people), 7.0, 11.0)
    hour_span = np.clip(rng.normal(8.5, 0.8, n_people), 6.5, 10.5)
    hour_lo[~human] = [p[2][0] for p in machine_profile]
    hour_span[~human] = [p[2][1] for p in machine_profile]
    evening_share = np.where(human, rng.beta(2.0, 20.0, n_people), 0.0)

    days = cfg.days
    weekday_prob = np.where(human, np.clip(rng.normal(0.92, 0.04, n_people), 0.75, 0.99), 1.0)
    weekend_prob = np.where(human, rng.beta(1.2, 14.0, n_people), 1.0)
    weekend_prob[~human] = [1.0 if p[3] else 0.05 for p in machine_profile]
    vacation_start = np.where(human & (rng.random(n_people) < 0.7), rng.integers(0, days, n_people), days)
    vacation_len = rng.integers(5, 11, n_people)

    rates = _routine_rates(rng, role, maintainer, machine_profile, n_repos)
    git_ua, web_ua, transport, git_token, web_token = _client_profiles(rng, role, bot_names + svc_names)
    candidates = _usual_repos(rng, cfg.repos_per_team, n_repos, team, role)

    world = _World(
        cfg=cfg, t0_ms=t0_ms, days=days, weekday0=first_day.weekday(), names=names, n_people=n_people,
        role=role, actor_id=actor_id, team=team, maintainer=maintainer, offset=offset, country=country,
        hour_lo=hour_lo, hour_span=hour_span, evening_share=evening_share, human=human,
        start_day=np.zeros(n_people, np.int64), end_day=np.full(n_people, days - 1, np.int64),
        weekday_prob=weekday_prob, weekend_prob=weekend_prob, vacation_start=vacation_start,
        vacation_len=vacation_len, day_noise_shape=np.where(human, 3.0, 30.0), rates=rates,
        git_ua=git_ua, web_ua=web_ua, git_token=git_token, web_token=web_token, transport=transport,
        candidates=candidates,
        ip_table=np.full((n_people, 8), -1, np.int32), ip_count=np.ones(n_people, np.int64),
        ip_main_share=np.ones(n_people),
        team_names=team_names, repos=repos, repo_team=repo_team, repo_visibility=repo_visibility,
        n_base_repos=n_repos, ips=[], ip_country=[],
    )
    _assign_addresses(world, rng)
    return world


def _routine_rates(rng: np.random.Generator, role: np.ndarray, maintainer: np.ndarray, machine_profile: list,
                   n_repos: int) -> np.ndarray:
    """[person, routine action] mean count per active day: personal activity for humans, per-repo for machines."""
    human = role <= ADMIN
    rates = np.zeros((len(role), len(_ROUTINE_ACTIONS)))
    col = {a: i for i, a in enumerate(_ROUTINE_ACTIONS)}
    activity = rng.lognormal(0.0, 0.45, len(role)) * np.where(role == ADMIN, 0.4, 1.0)
    for action, rate in _HUMAN_RATES.items():
        rates[human, col[action]] = rate * activity[human]
    rates[human, col["git.fetch"]] *= rng.lognormal(0.0, 0.5, int(human.sum()))  # IDE auto-fetch varies a lot
    for action, rate in _MAINTAINER_RATES.items():
        rates[maintainer, col[action]] = rate
    machines = np.flatnonzero(~human)
    for person, profile in zip(machines, machine_profile):
        for action, per_repo in profile[1].items():
            rates[person, col[action]] = per_repo * n_repos
    return rates


def _client_profiles(rng: np.random.Generator, role: np.ndarray, machine_names: list[str]) -> tuple[np.ndarray, ...]:
    """Per person: git and web user agents, git transport, and the token kinds of git and web requests."""
    human = role <= ADMIN
    client = rng.integers(0, len(_HUMAN_CLIENTS), len(role))
    git_ua = np.array([_UA_CODE[git] for git, _ in _HUMAN_CLIENTS], np.int16)[client]
    web_ua = np.array([_UA_CODE[web] for _, web in _HUMAN_CLIENTS], np.int16)[client]
    machine_ua = np.array([_UA_CODE[_MACHINE_AGENT.get(n, "git/2.47.1")] for n in machine_names], np.int16)
    git_ua[~human] = machine_ua
    web_ua[~human] = machine_ua
    ssh = human & (rng.random(len(role)) < 0.45)
    transport = np.where(ssh, TRANSPORTS.index("ssh"), TRANSPORTS.index("http")).astype(np.int8)
    pat = rng.random(len(role)) < 0.35
    git_token = np.where(pat, TOKEN_KINDS.index("personal_access_token"), TOKEN_KINDS.index("oauth_token"))
    git_token = np.where(ssh, -1, git_token).astype(np.int8)
    web_token = np.full(len(role), -1, np.int8)
    git_token[role == BOT] = web_token[role == BOT] = TOKEN_KINDS.index("GitHub App server-to-server token")
    git_token[role == SERVICE] = web_token[role == SERVICE] = TOKEN_KINDS.index("personal_access_token")
    return git_ua, web_ua, transport, git_token, web_token


def _usual_repos(rng: np.random.Generator, per_team: int, n_repos: int, team: np.ndarray, role: np.ndarray,
                 extras: int = 2) -> np.ndarray:
    """[person, K] usual repos in order of preference: the team's plus a couple of others (admins: any)."""
    candidates = np.empty((len(team), per_team + extras), np.int32)
    others = rng.integers(0, n_repos - per_team, (len(team), extras))
    own_team = np.maximum(team, 0)[:, None]
    candidates[:, per_team:] = others + per_team * (others >= own_team * per_team)
    candidates[:, :per_team] = own_team * per_team + np.arange(per_team)
    admins = role == ADMIN
    candidates[admins] = rng.integers(0, n_repos, (int(admins.sum()), per_team + extras))
    return rng.permuted(candidates, axis=1)


def _assign_addresses(world: _World, rng: np.random.Generator) -> None:
    """Usual IPs: a shared office IP per (team, country) plus a home IP; machines use datacenter pools."""
    human = np.flatnonzero(world.human)
    home = world.add_ips(rng, world.country[human])
    office_key = pd.Series(world.team[human].astype(str)) + ":" + pd.Series(world.country[human])
    keys, office_of = np.unique(office_key.to_numpy(), return_inverse=True)
    office_countries = np.array([k.split(":")[1] for k in keys])
    offices = world.add_ips(rng, office_countries)[office_of]
    remote = rng.random(len(human)) < 0.2
    world.ip_table[human, 0] = np.where(remote, home, offices)
    world.ip_table[human, 1] = home
    world.ip_count[human] = 2
    world.ip_main_share[human] = np.where(remote, 1.0, rng.uniform(0.35, 0.85, len(human)))
    bots = world.people_of(BOT)
    pool = world.add_ips(rng, ["US"] * 24, datacenter=True)
    if len(bots):
        world.ip_table[bots] = np.stack([rng.choice(pool, 8, replace=False) for _ in bots])
        world.ip_count[bots] = 8
        world.ip_main_share[bots] = 1.0 / 8.0
    services = world.people_of(SERVICE)
    if len(services):
        world.ip_table[services, :2] = world.add_ips(rng, ["US"] * (2 * len(services)), datacenter=True).reshape(-1, 2)
        world.ip_count[services] = 2
        world.ip_main_share[services] = 0.5


# --------------------------------------------------------------------------------------------------
# Routine activity (vectorized per actor-day)
# --------------------------------------------------------------------------------------------------


def _active_days(world: _World, rng: np.random.Generator) -> np.ndarray:
    """[person, local day] whether the person works that day (rhythm, vacation, employment)."""
    day = np.arange(world.days)
    weekend = world.weekday(day) >= 5
    p = np.where(weekend[None, :], world.weekend_prob[:, None], world.weekday_prob[:, None])
    active = rng.random((world.n_people, world.days)) < p
    on_vacation = (day >= world.vacation_start[:, None]) & (day < (world.vacation_start + world.vacation_len)[:, None])
    employed = (day >= world.start_day[:, None]) & (day <= world.end_day[:, None])
    return active & ~on_vacation & employed


def _local_hours(world: _World, rng: np.random.Generator, person: np.ndarray) -> np.ndarray:
    """Local hour of day of each event: inside working hours (humans: peaked mid-day), some evenings."""
    n = len(person)
    human = world.human[person]
    u = rng.random(n)
    u = np.where(human, 0.5 * (u + rng.random(n)), u)  # humans: triangular, peaked mid-day
    hours = world.hour_lo[person] + world.hour_span[person] * u
    late = np.flatnonzero(rng.random(n) < world.evening_share[person])
    hours[late] = world.hour_lo[person[late]] + world.hour_span[person[late]] + rng.exponential(1.5, len(late))
    return np.where(human, hours, hours % 24.0)  # a human's late hours run past local midnight


def _utc_ms(world: _World, person: np.ndarray | int, day: np.ndarray | int, hours: np.ndarray) -> np.ndarray:
    """Epoch ms of a local day and hour of `person` (their UTC offset applied)."""
    local = (np.asarray(hours, float) - world.offset[person]) * HOUR_MS
    return world.t0_ms + np.asarray(day, np.int64) * DAY_MS + local.astype(np.int64)


def _pick_usual_repos(world: _World, rng: np.random.Generator, person: np.ndarray) -> np.ndarray:
    """Humans: their usual repos by a Zipf preference, rarely a stray one; machines: any repo."""
    k = world.candidates.shape[1]
    cum = np.cumsum(1.0 / np.arange(1, k + 1) ** 0.9)
    rank = np.minimum(np.searchsorted(cum / cum[-1], rng.random(len(person)), side="right"), k - 1)
    usual = world.candidates[person, rank]
    anywhere = rng.integers(0, world.n_base_repos, len(person)).astype(np.int32)
    stray = ~world.human[person] | (rng.random(len(person)) < 0.002)
    return np.where(stray, anywhere, usual)


def _pick_ips(world: _World, rng: np.random.Generator, person: np.ndarray) -> np.ndarray:
    """One of the person's usual IPs per event: the main one with its share, else any other evenly."""
    main, count = world.ip_main_share[person], world.ip_count[person]
    u = rng.random(len(person))
    other = 1 + ((u - main) / np.maximum(1.0 - main, 1e-9) * (count - 1)).astype(np.int64)
    column = np.where(u < main, 0, np.minimum(other, count - 1))
    return world.ip_table[person, column]


def _client_columns(world: _World, person: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, ...]:
    """User agent, token kind and transport of each event from the actor's profile and the channel."""
    channel = _ACTION_CHANNEL[action]
    git, web = channel == GIT, channel == WEB
    ua = np.where(git, world.git_ua[person], np.where(web, world.web_ua[person], -1)).astype(np.int16)
    token = np.where(git, world.git_token[person], np.where(web, world.web_token[person], -1)).astype(np.int8)
    transport = np.where(git, world.transport[person], -1).astype(np.int8)
    return ua, token, transport


def _batch(world: _World, rng: np.random.Generator, ts: np.ndarray, person: np.ndarray, action: np.ndarray,
           repo: np.ndarray, user: np.ndarray | None = None, visibility: np.ndarray | None = None,
           permission: np.ndarray | None = None) -> _EventBatch:
    """A batch with IPs and client columns filled from the actors' profiles."""
    n = len(ts)
    ua, token, transport = _client_columns(world, person, action)
    none = np.full(n, -1, np.int8)
    return _EventBatch(
        ts=ts.astype(np.int64), person=person.astype(np.int32), action=action.astype(np.int16),
        repo=repo.astype(np.int32), user=(np.full(n, -1) if user is None else user).astype(np.int32),
        ip=_pick_ips(world, rng, person), ua=ua, token=token, transport=transport,
        visibility=none if visibility is None else visibility.astype(np.int8),
        permission=none if permission is None else permission.astype(np.int8),
    )


def _routine_events(world: _World, rng: np.random.Generator, active: np.ndarray) -> _EventBatch:
    """Everyone's ordinary work: Poisson counts per actor-day and action, expanded to events."""
    noise = rng.gamma(world.day_noise_shape[:, None], 1.0 / world.day_noise_shape[:, None], active.shape)
    lam = (active * noise)[:, :, None] * world.rates[:, None, :]
    counts = rng.poisson(lam).ravel()
    cells = np.flatnonzero(counts)
    repeat = counts[cells]
    person, day, slot = (np.repeat(i, repeat) for i in np.unravel_index(cells, lam.shape))
    action = _ROUTINE_CODES[slot]
    ts = _utc_ms(world, person, day, _local_hours(world, rng, person))
    mode = _ROUTINE_REPO_MODE[slot]
    repo = np.where(mode == _CANDIDATE, _pick_usual_repos(world, rng, person), -1).astype(np.int32)
    visibility = np.full(len(ts), -1, np.int8)
    created = np.flatnonzero(mode == _NEW_REPO)
    if len(created):
        creators = person[created]
        words = np.asarray(_NEW_REPO_WORDS)[rng.integers(0, len(_NEW_REPO_WORDS), len(created))]
        owner_team = np.where(world.team[creators] >= 0, world.team[creators],
                              rng.integers(0, world.cfg.n_teams, len(created)))
        serial = np.char.add("-", np.arange(1, len(created) + 1).astype(str))
        names = np.char.add(np.char.add(f"{world.cfg.org}/", world.team_names[owner_team]),
                            np.char.add(np.char.add("-", words), serial))
        vis = rng.choice(len(VISIBILITIES), len(created), p=[0.05, 0.7, 0.25])
        repo[created] = world.add_repos(names.tolist(), owner_team, vis)
        visibility[created] = vis
    return _batch(world, rng, ts, person, action, repo, visibility=visibility)


def _admin_routine_events(world: _World, rng: np.random.Generator, active: np.ndarray) -> _EventBatch:
    """Admins' legitimate rare admin work, a few actions a week each."""
    admins = world.people_of(ADMIN)
    counts = rng.poisson(active[admins] * _ADMIN_ACTIONS_PER_DAY).ravel()
    cells = np.flatnonzero(counts)
    row, day = (np.repeat(i, counts[cells]) for i in np.unravel_index(cells, (len(admins), world.days)))
    person = admins[row]
    n = len(person)
    shares = np.array([a[1] for a in _ADMIN_ROUTINE])
    kind = rng.choice(len(_ADMIN_ROUTINE), n, p=shares / shares.sum())
    action = np.array([_ACTION_CODE[a[0]] for a in _ADMIN_ROUTINE], np.int16)[kind]
    developers = world.people_of(DEVELOPER)
    outsiders = np.arange(world.n_people, len(world.names))
    target = np.array([a[3] or "" for a in _ADMIN_ROUTINE])[kind]
    user = np.where(target == "member", developers[rng.integers(0, len(developers), n)],
                    np.where(target == "outsider", outsiders[rng.integers(0, len(outsiders), n)], -1))
    permission = np.full(n, -1, np.int8)
    for k, (_, _, perms, _) in enumerate(_ADMIN_ROUTINE):
        mine = np.flatnonzero(kind == k)
        if perms and len(mine):
            p = np.array([s for _, s in perms])
            codes = np.array([PERMISSIONS.index(v) for v, _ in perms])
            permission[mine] = codes[rng.choice(len(perms), len(mine), p=p)]
    in_repo = _ACTION_SCOPE[action] == 0
    repo = np.where(in_repo, rng.integers(0, world.n_base_repos, n), -1)
    ts = _utc_ms(world, person, day, _local_hours(world, rng, person))
    return _batch(world, rng, ts, person, action, repo, user=user, permission=permission)


# --------------------------------------------------------------------------------------------------
# Scripted events: the one helper every scenario uses
# --------------------------------------------------------------------------------------------------


def _codes(values: str | Sequence[str] | int | Sequence[int] | np.ndarray | None, vocab: Sequence[str] | dict,
           n: int) -> np.ndarray:
    """Broadcast names (looked up in `vocab`) or codes to `n` codes; None -> -1 (null)."""
    if values is None:
        return np.full(n, -1)
    items = [values] if isinstance(values, (str, int, np.integer)) else list(values)
    lookup = vocab if isinstance(vocab, dict) else {v: i for i, v in enumerate(vocab)}
    codes = np.array([lookup[v] if isinstance(v, str) else int(v) for v in items])
    return np.broadcast_to(codes, (n,)).copy() if len(codes) == 1 else codes


def _scripted(world: _World, person: int, day: int, hours: np.ndarray, actions: str | Sequence[str],
              repos: int | Sequence[int] | np.ndarray | None = None, *, ip: int | None = None,
              users: int | Sequence[int] | np.ndarray | None = None, ua: str | None = None,
              token: str | None = None, transport: str | None = None,
              visibility: str | Sequence[str | int] | None = None,
              permission: str | Sequence[str | int] | None = None) -> _EventBatch:
    """Turn one actor's planned actions on one local day into events (defaults from their profile).

    `hours` are local hours of `person`; `ip` defaults to their main IP (country follows the IP);
    `ua`, `token` and `transport` override the profile for git/web events. A session that would
    straddle UTC midnight is nudged into the UTC day holding most of it (one session, one actor-day),
    and events outside the simulated window are dropped, so labels built from the batch have events.
    """
    hours = np.atleast_1d(np.asarray(hours, float))
    n = len(hours)
    action = _codes(actions, _ACTION_CODE, n).astype(np.int16)
    repo = _codes(repos, {}, n)
    repo = np.where(_ACTION_SCOPE[action] == 0, repo, -1)
    people = np.full(n, person)
    ua_codes, token_codes, transport_codes = _client_columns(world, people, action)
    client = _ACTION_CHANNEL[action] != SYSTEM
    if ua is not None:
        ua_codes = np.where(client, _UA_CODE[ua], ua_codes).astype(np.int16)
    if token is not None:
        token_codes = np.where(client, TOKEN_KINDS.index(token), token_codes).astype(np.int8)
    if transport is not None:
        transport_codes = np.where(_ACTION_CHANNEL[action] == GIT, TRANSPORTS.index(transport), -1).astype(np.int8)
    batch = _EventBatch(
        ts=_within_one_utc_day(world, _utc_ms(world, person, day, hours)), person=people.astype(np.int32),
        action=action, repo=repo.astype(np.int32), user=_codes(users, {}, n).astype(np.int32),
        ip=np.full(n, world.ip_table[person, 0] if ip is None else ip, np.int32),
        ua=ua_codes, token=token_codes, transport=transport_codes,
        visibility=_codes(visibility, VISIBILITIES, n).astype(np.int8),
        permission=_codes(permission, PERMISSIONS, n).astype(np.int8),
    )
    return batch.select((batch.ts >= world.t0_ms) & (batch.ts < world.end_ms))


def _within_one_utc_day(world: _World, ts: np.ndarray, margin_ms: int = 5 * 60_000) -> np.ndarray:
    """Shift a session crossing UTC midnight into the UTC day holding most of its events."""
    day = (ts - world.t0_ms) // DAY_MS
    if len(ts) == 0 or day.min() == day.max():
        return ts
    main = day.min() + np.bincount(day - day.min()).argmax()
    low = world.t0_ms + main * DAY_MS + margin_ms
    high = world.t0_ms + (main + 1) * DAY_MS - margin_ms
    if ts.min() < low:
        return ts + (low - ts.min())
    return ts - (ts.max() - high)


def _work_hours(world: _World, rng: np.random.Generator, person: int, n: int) -> np.ndarray:
    """`n` sorted local hours inside `person`'s working day."""
    return np.sort(world.hour_lo[person] + world.hour_span[person] * rng.beta(2.0, 2.0, n))


def _burst(rng: np.random.Generator, start_hour: float, n: int, mean_gap_minutes: float) -> np.ndarray:
    """`n` local hours from `start_hour`, a few minutes apart (one sitting)."""
    return start_hour + np.cumsum(rng.exponential(mean_gap_minutes / 60.0, n))


def _working_day(world: _World, rng: np.random.Generator, low: int, high: int) -> int:
    """A random Monday-to-Friday local day in [low, high] (any day if the range has none)."""
    days = np.arange(low, high + 1)
    weekdays = days[world.weekday(days) < 5]
    return int(rng.choice(weekdays if len(weekdays) else days))


# --------------------------------------------------------------------------------------------------
# Scenario kinds (one function each)
# --------------------------------------------------------------------------------------------------


def _mass_clone_before_leaving(world: _World, rng: np.random.Generator, inst: _Instance) -> _Injection:
    """A developer clones and downloads most repos over 1-2 days, then an admin removes them."""
    out = _Injection()
    person, removal = inst.actor, inst.other
    count = max(8, int(0.7 * world.n_base_repos))
    targets = rng.permutation(world.n_base_repos)[:count]
    for k, chunk in enumerate(np.array_split(targets, inst.length)):
        zips = chunk[rng.random(len(chunk)) < 0.3]
        repos = np.concatenate([chunk, zips])
        actions = ["git.clone"] * len(chunk) + ["repo.download_zip"] * len(zips)
        start = world.hour_lo[person] + rng.uniform(1.0, world.hour_span[person] - 2.0)
        hours = _burst(rng, start, len(repos), 2.0)
        order = rng.permutation(len(repos))
        out.add(_scripted(world, person, inst.day + k, hours, [actions[i] for i in order], repos[order]),
                "mass_clone_before_leaving")
    admin = int(rng.choice(world.people_of(ADMIN)))
    out.add(_scripted(world, admin, removal, _work_hours(world, rng, admin, 1), "org.remove_member", users=person))
    return out


def _stolen_token(world: _World, rng: np.random.Generator, inst: _Instance) -> _Injection:
    """The developer's token clones and downloads repos from a new country at 3 a.m. their time."""
    out = _Injection()
    person = inst.actor
    country = str(rng.choice([c for c in _THIEF_COUNTRIES if c != world.country[person]]))
    ip = int(world.add_ips(rng, [country])[0])
    clones = rng.permutation(world.n_base_repos)[: int(rng.integers(12, 26))]
    zips = rng.choice(clones, size=min(len(clones), int(rng.integers(3, 7))), replace=False)
    repos = np.concatenate([clones, zips])
    actions = ["git.clone"] * len(clones) + ["repo.download_zip"] * len(zips)
    hours = _burst(rng, rng.uniform(2.5, 3.5), len(repos), 1.5)
    out.add(_scripted(world, person, inst.day, hours, actions, repos, ip=ip, ua=str(rng.choice(_THIEF_AGENTS)),
                      token="personal_access_token", transport="http"), "stolen_token")
    return out


def _protection_tampering(world: _World, rng: np.random.Generator, inst: _Instance) -> _Injection:
    """A developer who never touches settings overrides and tears down branch and secret protection."""
    out = _Injection()
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
    hours = _burst(rng, world.hour_lo[person] + world.hour_span[person] + rng.uniform(-1.0, 1.0), keep, 3.0)
    out.add(_scripted(world, person, inst.day, hours, actions[:keep], repos[:keep]), "protection_tampering")
    return out


def _persistence(world: _World, rng: np.random.Generator, inst: _Instance) -> _Injection:
    """A developer plants a deploy key, a webhook, an app and a self-hosted runner in others' repos."""
    out = _Injection()
    person = inst.actor
    foreign = world.foreign_repos(rng, person, 3)
    actions = ["git.clone", "public_key.create", "hook.create", "integration_installation.create",
               "repo.register_self_hosted_runner"]
    repos = [foreign[0], foreign[0], foreign[1], -1, foreign[2]]
    hours = _burst(rng, world.hour_lo[person] + world.hour_span[person] + rng.uniform(0.5, 2.5), len(actions), 6.0)
    out.add(_scripted(world, person, inst.day, hours, actions, repos), "persistence")
    return out


def _admin_abuse(world: _World, rng: np.random.Generator, inst: _Instance) -> _Injection:
    """An admin weakens the org late at night: 2FA, OAuth restrictions, a new owner, streaming, a repo public."""
    out = _Injection()
    admin = inst.actor
    accomplice = int(rng.choice(world.people_of(DEVELOPER)))
    private = np.flatnonzero(np.asarray(world.repo_visibility[: world.n_base_repos]) == VISIBILITIES.index("private"))
    exposed = int(rng.choice(private if len(private) else np.arange(world.n_base_repos)))
    streaming = "audit_log_streaming.destroy" if inst.other % 2 == 0 else "audit_log_streaming.update"
    actions = ["org.disable_two_factor_requirement", "org.disable_oauth_app_restrictions", "org.update_member",
               streaming, "repo.access"]
    hours = _burst(rng, rng.uniform(22.0, 23.0), len(actions), 4.0)
    out.add(_scripted(world, admin, inst.day, hours, actions, [-1, -1, -1, -1, exposed],
                      users=[-1, -1, accomplice, -1, -1], permission=[-1, -1, "admin", -1, -1],
                      visibility=[-1, -1, -1, -1, "public"]), "admin_abuse")
    return out


def _slow_access_widening(world: _World, rng: np.random.Generator, inst: _Instance) -> _Injection:
    """A developer reaches a few never-seen repos a day for ~10 days, then downloads them."""
    out = _Injection()
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
        hours = _work_hours(world, rng, person, len(repos))
        out.add(_scripted(world, person, inst.day + k, hours, actions, repos), "slow_access_widening")
    return out


def _repo_exfil_transfer(world: _World, rng: np.random.Generator, inst: _Instance) -> _Injection:
    """A developer mirrors a repo, then transfers it out of the org (or downloads and destroys it)."""
    out = _Injection()
    person = inst.actor
    repo = int(rng.choice(world.candidates[person]))
    if inst.other % 2 == 0:
        actions = ["git.clone", "repo.transfer_start", "repo.transfer_outgoing"]
    else:
        actions = ["git.clone", "repo.download_zip", "repo.destroy"]
    hours = _burst(rng, world.hour_lo[person] + rng.uniform(0.5, world.hour_span[person] - 1.0), len(actions), 8.0)
    batch = _scripted(world, person, inst.day, hours, actions, repo)
    out.add(batch, "repo_exfil_transfer")
    if len(batch):
        out.repo_cuts.append((repo, int(batch.ts.max())))
    return out


def _benign_team_migration(world: _World, rng: np.random.Generator, inst: _Instance) -> _Injection:
    """A reorg: every member of a team clones another team's repos on the same day."""
    out = _Injection()
    source, target = inst.actor, inst.other
    members = np.flatnonzero((world.team == source) & (world.start_day <= inst.day) & (world.end_day >= inst.day))
    repos = world.team_repos(target)
    admin = int(rng.choice(world.people_of(ADMIN)))
    out.add(_scripted(world, admin, max(inst.day - 1, 0), _work_hours(world, rng, admin, len(repos)),
                      "team.add_repository", repos))
    for member in members:
        mine = np.concatenate([repos, rng.choice(repos, size=int(rng.integers(0, len(repos) + 1)))])
        actions = ["git.clone"] * len(repos) + ["git.fetch"] * (len(mine) - len(repos))
        out.add(_scripted(world, int(member), inst.day, _work_hours(world, rng, int(member), len(mine)), actions, mine),
                "benign_team_migration")
    return out


def _benign_admin_review(world: _World, rng: np.random.Generator, inst: _Instance) -> _Injection:
    """A planned access review: an admin changes many memberships and branch rules in one day."""
    out = _Injection()
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
    hours = _burst(rng, start, n, 6.0)
    out.add(_scripted(world, admin, inst.day, hours, actions.tolist(), repos, users=users,
                      permission=[p or -1 for p in permission.tolist()]), "benign_admin_review")
    return out


def _benign_new_laptop(world: _World, rng: np.random.Generator, inst: _Instance) -> _Injection:
    """A developer sets up a new laptop: new SSH key, re-clones their usual repos from a new home IP."""
    out = _Injection()
    person = inst.actor
    ip = int(world.add_ips(rng, [world.country[person]])[0])
    repos = np.unique(world.candidates[person])
    actions = ["public_key.create"] + ["git.clone"] * len(repos)
    hours = _burst(rng, world.hour_lo[person] + rng.uniform(0.5, 3.0), len(actions), 4.0)
    out.add(_scripted(world, person, inst.day, hours, actions, np.concatenate([[-1], repos]), ip=ip,
                      ua=_NEW_LAPTOP_GIT), "benign_new_laptop")
    return out


_SCENARIO_FUNCTIONS: dict[str, Callable[[_World, np.random.Generator, _Instance], _Injection]] = {
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


# --------------------------------------------------------------------------------------------------
# Casting: who does what when (and membership changes)
# --------------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Scenario instances plus the hires and leavers of the window."""

    instances: list[_Instance]
    hires: np.ndarray
    leavers: np.ndarray


def _check(cfg: SimulatorSource) -> None:
    """Fail early, naming the key, when the settings cannot make the enterprise asked for."""
    try:
        dt.date.fromisoformat(cfg.end)
    except ValueError:
        raise ConfigError(f"source.end={cfg.end!r}: expected a date YYYY-MM-DD") from None
    a, b = cfg.attacks_per_scenario, cfg.benign_per_scenario
    minimums = {
        "attack_days": 10, "days": cfg.attack_days + 14, "n_teams": 2, "repos_per_team": 2, "n_admins": max(1, a),
        "n_developers": 2 * cfg.n_teams, "attacks_per_scenario": 0, "benign_per_scenario": 0, "hires": 0,
        "leavers": 0, "n_bots": 0, "n_service_accounts": 0,
    }
    for key, low in minimums.items():
        if getattr(cfg, key) < low:
            raise ConfigError(f"source.{key}={getattr(cfg, key)}: expected >= {low}")
    needed = cfg.n_teams + 6 * a + b + cfg.hires + cfg.leavers
    if cfg.n_developers < needed:
        raise ConfigError(
            f"source.n_developers={cfg.n_developers}: expected >= {needed} (one maintainer per team plus distinct "
            f"developers for 6 x attacks_per_scenario, benign_per_scenario, hires and leavers)"
        )


def _slot_day(rng: np.random.Generator, first: int, stop: int, i: int, n: int) -> int:
    """A day in the i-th of n equal slices of [first, stop): instances spread over the attack span, the last
    slice ending the window, so every kind has an instance in the most recent days (the detect window)."""
    lo = first + (stop - first) * i // n
    hi = max(first + (stop - first) * (i + 1) // n, lo + 1)
    return int(rng.integers(lo, hi))


def _plan(world: _World, rng: np.random.Generator) -> _Plan:
    """Choose distinct actors and days for every instance; set hires', leavers' and quitters' dates."""
    cfg, days = world.cfg, world.days
    a, b = cfg.attacks_per_scenario, cfg.benign_per_scenario
    first = days - cfg.attack_days
    pool = iter(rng.permutation(np.flatnonzero((world.role == DEVELOPER) & ~world.maintainer)).tolist())
    instances: list[_Instance] = []
    developer_kinds = [k for k in ATTACK_SCENARIOS if k != "admin_abuse"]
    for kind in developer_kinds:
        for i in range(a):
            person = next(pool)
            if kind == "mass_clone_before_leaving":
                span = int(rng.integers(1, 3))
                day = _slot_day(rng, first, days - 7, i, a)
                removal = day + span - 1 + int(rng.integers(2, 6))
                world.end_day[person] = removal - 2  # a clear day between the last work and the removal
                instances.append(_Instance(kind, person, day, span, removal))
            elif kind == "slow_access_widening":
                length = min(int(rng.integers(8, 13)), cfg.attack_days - 2)
                instances.append(_Instance(kind, person, _slot_day(rng, first, days - length, i, a), length, i))
            else:
                instances.append(_Instance(kind, person, _slot_day(rng, first, days - 1, i, a), 1, i))
    admins = rng.permutation(world.people_of(ADMIN))
    for i in range(a):
        instances.append(_Instance("admin_abuse", int(admins[i]), _slot_day(rng, first, days - 1, i, a), 1, i))
    reviewers = np.concatenate([admins[a:], admins[:a]])
    teams = rng.permutation(cfg.n_teams)
    for i in range(b):
        source = int(teams[i % cfg.n_teams])
        target = int((source + 1 + rng.integers(0, cfg.n_teams - 1)) % cfg.n_teams)
        migration_day = _working_day(world, rng, first, days - 2)
        instances.append(_Instance("benign_team_migration", source, migration_day, 1, target))
        instances.append(_Instance("benign_admin_review", int(reviewers[i % len(reviewers)]),
                                   _working_day(world, rng, first, days - 2)))
        instances.append(_Instance("benign_new_laptop", next(pool), _working_day(world, rng, first, days - 2)))
    hires = np.array([next(pool) for _ in range(cfg.hires)], dtype=np.int64)
    world.start_day[hires] = rng.integers(days // 5, max(days // 5 + 1, days * 3 // 4), len(hires))
    leavers = np.array([next(pool) for _ in range(cfg.leavers)], dtype=np.int64)
    world.end_day[leavers] = rng.integers(days // 3, days - 6, len(leavers))
    return _Plan(instances, hires, leavers)


def _membership_events(world: _World, rng: np.random.Generator, plan: _Plan) -> _Injection:
    """Admins add each hire (who clones the team's repos on day one) and remove each leaver and quitter."""
    out = _Injection()
    admins = world.people_of(ADMIN)
    for hire in plan.hires.tolist():
        admin = int(rng.choice(admins))
        start = int(world.start_day[hire])
        day = max(start - int(rng.integers(2, 5)), 0)
        out.add(_scripted(world, admin, day, _work_hours(world, rng, admin, 2), ["org.add_member", "team.add_member"],
                          users=hire, permission=["read", -1]))
        repos = world.team_repos(int(world.team[hire]))
        out.add(_scripted(world, hire, start, _work_hours(world, rng, hire, len(repos)), "git.clone", repos))
    for leaver in plan.leavers.tolist():
        admin = int(rng.choice(admins))
        day = min(int(world.end_day[leaver]) + int(rng.integers(2, 6)), world.days - 1)
        out.add(_scripted(world, admin, day, _work_hours(world, rng, admin, 1), "org.remove_member", users=leaver))
    return out


# --------------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------------


def _document_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """`n` random 22-character base64url ids (128 random bits each), like GitHub's `_document_id`."""
    alphabet = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", np.uint8)
    words = np.frombuffer(rng.bytes(16 * n), np.uint64).reshape(n, 2)
    hi, lo = words[:, 0], words[:, 1]
    six = np.uint64(63)
    sextets = np.empty((22, n), np.uint8)
    for i in range(10):
        sextets[i] = (hi >> np.uint64(58 - 6 * i)) & six
        sextets[11 + i] = (lo >> np.uint64(56 - 6 * i)) & six
    sextets[10] = ((hi & np.uint64(15)) << np.uint64(2)) | (lo >> np.uint64(62))
    sextets[21] = (lo & np.uint64(3)) << np.uint64(4)
    chars = np.ascontiguousarray(alphabet[sextets].T)
    offsets = np.arange(0, 22 * (n + 1), 22, dtype=np.int64)
    array = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])
    return array.cast(pa.string())


_CHUNK_ROWS = 1 << 20  # rows per record batch; also fixes the order in which document ids are drawn


def _dictionary(values: Sequence[str] | np.ndarray) -> pa.Array:
    """An Arrow string array of vocabulary values, to take codes from."""
    return pa.array(np.asarray(values, dtype=object), type=pa.string())


def _take(dictionary: pa.Array, codes: np.ndarray) -> pa.Array:
    """Strings of `dictionary` at `codes` (-1 -> null), done in Arrow."""
    codes = codes.astype(np.int32)
    indices = pa.array(codes, mask=codes < 0) if (codes < 0).any() else pa.array(codes)
    return pc.take(dictionary, indices)


def _to_table(world: _World, rng: np.random.Generator, events: _EventBatch, order: np.ndarray) -> pa.Table:
    """Materialize the events in `order` as the raw GitHub-shaped Arrow table, one record batch per chunk.

    Working chunk by chunk keeps intermediates small, which matters more than arithmetic here.
    """
    vocab = {
        "action": _dictionary(ACTIONS), "names": _dictionary(world.names), "ips": _dictionary(world.ips),
        "country": _dictionary(world.ip_country), "org": _dictionary([world.cfg.org]),
        "repos": _dictionary(world.repos), "op": _dictionary(_OPERATION_TYPES),
        "transport": _dictionary(TRANSPORTS), "token": _dictionary(TOKEN_KINDS), "ua": _dictionary(USER_AGENTS),
        "visibility": _dictionary(VISIBILITIES), "permission": _dictionary(PERMISSIONS),
    }
    business = pa.scalar(world.cfg.business, pa.string())
    enterprise_level = _SCOPES.index("business")
    batches = []
    for start in range(0, len(order), _CHUNK_ROWS):
        chunk = events.select(order[start:start + _CHUNK_ROWS])
        n = len(chunk)
        ts = pa.array(chunk.ts, pa.int64())
        country = _take(vocab["country"], chunk.ip)
        columns = [
            ts, ts, _document_ids(rng, n),
            _take(vocab["action"], chunk.action),
            _take(vocab["names"], chunk.person),
            pa.array(world.actor_id[chunk.person], pa.int64()),
            _take(vocab["ips"], chunk.ip),
            pa.StructArray.from_arrays([country], fields=[pa.field("country_code", pa.string())]),
            _take(vocab["org"], np.where(_ACTION_SCOPE[chunk.action] == enterprise_level, -1, 0)),
            _take(vocab["repos"], chunk.repo),
            _take(vocab["names"], chunk.user),
            _take(vocab["op"], _ACTION_OP[chunk.action]),
            _take(vocab["transport"], chunk.transport),
            _take(vocab["token"], chunk.token),
            _take(vocab["ua"], chunk.ua),
            pa.repeat(business, n),
            _take(vocab["visibility"], chunk.visibility),
            _take(vocab["permission"], chunk.permission),
        ]
        batches.append(pa.RecordBatch.from_arrays(columns, schema=RAW_SCHEMA))
    return pa.Table.from_batches(batches, schema=RAW_SCHEMA)


def _labels_frame(world: _World, labelled: list[tuple[_EventBatch, str]]) -> pd.DataFrame:
    """One row per labelled actor-day (UTC); on a shared actor-day an attack wins, then a one-person look-alike.

    A session crossing UTC midnight labels only the days holding at least a quarter of its events,
    so a single event spilling over midnight does not make a labelled day of its own.
    """
    columns = ["actor", "day", "scenario"]
    if not labelled:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "day" else object) for c in columns})
    parts = [pd.DataFrame({"batch": k, "person": b.person, "day": (b.ts - world.t0_ms) // DAY_MS, "scenario": s})
             for k, (b, s) in enumerate(labelled)]
    events = pd.concat(parts, ignore_index=True)
    per_day = events.groupby(["batch", "person", "day", "scenario"], as_index=False).size()
    share = per_day["size"] / per_day.groupby(["batch", "person"])["size"].transform("sum")
    frame = per_day.loc[share >= 0.25].copy()
    frame["priority"] = frame["scenario"].map(_LABEL_PRIORITY)
    frame = frame.sort_values(["priority", "person", "day"], kind="stable").drop_duplicates(["person", "day"])
    days = pd.to_datetime(world.t0_ms + frame["day"].to_numpy() * DAY_MS, unit="ms").astype("datetime64[ns]")
    out = pd.DataFrame({"actor": world.names[frame["person"].to_numpy()].astype(object), "day": days,
                        "scenario": frame["scenario"].to_numpy().astype(object)})
    return out.sort_values(["day", "actor"], kind="stable").reset_index(drop=True)


def _actors_frame(world: _World) -> pd.DataFrame:
    """Who is who: role, team, maintainer, time zone, country, joining and leaving days."""
    people = np.arange(world.n_people)
    day0 = pd.Timestamp(world.t0_ms, unit="ms")
    joined = day0 + pd.to_timedelta(world.start_day, unit="D")
    left = day0 + pd.to_timedelta(world.end_day, unit="D")
    return pd.DataFrame({
        "actor": world.names[people].astype(object),
        "actor_id": world.actor_id,
        "role": np.asarray(ROLES, dtype=object)[world.role],
        "team": np.where(world.team >= 0, world.team_names[np.maximum(world.team, 0)], None).astype(object),
        "maintainer": world.maintainer,
        "utc_offset": world.offset,
        "country": world.country.astype(object),
        "joined": joined.where(world.start_day > 0),
        "left": left.where(world.end_day < world.days - 1),
    })


def simulate(cfg: SimulatorSource) -> SimulatedEnterprise:
    """Simulate the enterprise's audit log for `cfg.days` days ending at `cfg.end`; same seed, same table."""
    _check(cfg)
    world_rng, plan_rng, routine_rng, scenario_rng, id_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(5)
    )
    world = _build_world(cfg, world_rng)
    plan = _plan(world, plan_rng)
    active = _active_days(world, routine_rng)
    routine = _EventBatch.concat([_routine_events(world, routine_rng, active),
                                  _admin_routine_events(world, routine_rng, active)])
    injected = _membership_events(world, scenario_rng, plan)
    for inst in plan.instances:
        injected.extend(_SCENARIO_FUNCTIONS[inst.kind](world, scenario_rng, inst))
    keep = (routine.ts >= world.t0_ms) & (routine.ts < world.end_ms)
    for repo, gone_after in injected.repo_cuts:
        keep &= ~((routine.repo == repo) & (routine.ts > gone_after))
    events = _EventBatch.concat([routine.select(keep), *injected.events])
    return SimulatedEnterprise(
        raw=_to_table(world, id_rng, events, np.argsort(events.ts, kind="stable")),
        labels=_labels_frame(world, injected.labelled),
        actors=_actors_frame(world),
    )
