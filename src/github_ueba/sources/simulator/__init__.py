"""Built-in simulated enterprise: a believable GitHub audit log with labelled attacks and look-alikes.

Developers in teams with their own time zones, working hours, weekly rhythm, IPs and repositories;
admins doing rare admin work; CI bots and service accounts running around the clock; hires and
leavers. On top of that routine, one function per scenario kind injects labelled attacks (mass clone
before leaving, stolen token, ...) and benign look-alikes (team migration, admin review, new laptop).
Routine events are drawn per actor-day in numpy arrays (no Python loop per event), so 2,000
developers give about ten million events in seconds. Every action name is a real GitHub audit-log
action, checked against GitHub's "Audit log events for your organization / enterprise" pages.

Modules, in import order: `catalog` (vocabulary) → `profiles` (behaviour rates) → `batches` (event
code arrays) → `world` (population) → `routine` → `scripted` → `scenarios` → `casting` → `output`
(Arrow table, labels) → `ndjson` (writer) → `enterprise` (`simulate`).
"""

from github_ueba.sources.simulator.catalog import (
    ACTION_CATALOG,
    ACTIONS,
    ATTACK_SCENARIOS,
    BENIGN_SCENARIOS,
    DAY_MS,
    HOUR_MS,
    PERMISSIONS,
    RAW_SCHEMA,
    ROLES,
    SIMULATED_ACTIONS,
    TOKEN_KINDS,
    TRANSPORTS,
    USER_AGENTS,
    VISIBILITIES,
)
from github_ueba.sources.simulator.enterprise import SimulatedEnterprise, simulate
from github_ueba.sources.simulator.ndjson import write_ndjson

__all__ = [
    "ACTIONS",
    "ACTION_CATALOG",
    "ATTACK_SCENARIOS",
    "BENIGN_SCENARIOS",
    "DAY_MS",
    "HOUR_MS",
    "PERMISSIONS",
    "RAW_SCHEMA",
    "ROLES",
    "SIMULATED_ACTIONS",
    "TOKEN_KINDS",
    "TRANSPORTS",
    "USER_AGENTS",
    "VISIBILITIES",
    "SimulatedEnterprise",
    "simulate",
    "write_ndjson",
]
