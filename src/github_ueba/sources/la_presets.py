"""Column-mapping presets: how each Log Analytics deployment of the GitHub audit log maps onto the
canonical events table, and the KQL prelude (`let GH_Audit_Logs_CL = <table> | project ...;`) that
applies the mapping so the kql/ functions run unchanged.

Column names were checked against Azure/Azure-Sentinel `Solutions/GitHub`: the parser
`Parsers/GitHubAuditData.yaml` (legacy `GitHubAuditLogPolling_CL`, which reads every column through
`column_ifexists`, because the Data Collector API creates a column only once a record carried it) and
`Data Connectors/GitHubAuditLogs_AzStorage/table_GitHubAuditLogsV2.json` (`GitHubAuditLogsV2_CL`).
Every name that goes into the query is checked against a strict identifier pattern first, so nothing
can be injected through the config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional

from github_ueba.config import ConfigError
from github_ueba.events import EVENT_SCHEMA, KQL_TABLE

#: A KQL table or column name we accept from config: letters, digits, underscores; no leading digit.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")

#: Canonical columns the prelude produces (all of EVENT_SCHEMA, so every kql/ function finds its column).
CANONICAL_COLUMNS: list[str] = EVENT_SCHEMA.names
#: Columns the prelude fills itself (provenance), never read from the workspace.
_PROVENANCE = ("source_file", "source_line")
MAPPABLE_COLUMNS: list[str] = [c for c in CANONICAL_COLUMNS if c not in _PROVENANCE]

#: Source column kinds. Timestamp: epoch_ms (long/real milliseconds) or datetime. Others: string or
#: number (a real/long id such as GitHubAuditLogsV2_CL.ActorId, rendered as an integer string).
TIMESTAMP_KINDS = ("epoch_ms", "datetime")
VALUE_KINDS = ("string", "number")

_EPOCH = "datetime(1970-01-01)"
_DEFAULTS = {"string": "''", "number": "real(null)", "epoch_ms": "real(null)", "datetime": "datetime(null)"}


@dataclass(frozen=True)
class SourceColumn:
    """One workspace column feeding a canonical column; `optional` reads it with column_ifexists."""

    name: str
    kind: str = "string"
    optional: bool = False


@dataclass(frozen=True)
class Preset:
    """A deployment's table and its mapping; `timestamp` sources are coalesced in order."""

    name: str
    table: str
    timestamp: tuple[SourceColumn, ...]
    columns: Mapping[str, SourceColumn]


def _same_names(names: list[str], optional: bool) -> dict[str, SourceColumn]:
    return {n: SourceColumn(n, optional=optional) for n in names}


PRESETS: dict[str, Preset] = {
    # The paper's custom table: GitHub's own field names, `timestamp` in epoch ms. It has the same name
    # as the canonical table; KQL evaluates a let's right-hand side before the name is rebound, so
    # `let GH_Audit_Logs_CL = GH_Audit_Logs_CL | project ...` reads the workspace table.
    "gh_audit_logs_cl": Preset(
        name="gh_audit_logs_cl",
        table=KQL_TABLE,
        timestamp=(SourceColumn("timestamp", "epoch_ms"),),
        columns={
            **_same_names(["action", "actor", "org", "repo", "user", "actor_ip"], optional=False),
            **_same_names(
                ["document_id", "actor_id", "country_code", "operation_type", "transport_protocol_name",
                 "programmatic_access_type", "user_agent", "business", "visibility", "permission"],
                optional=True,
            ),
        },
    ),
    # Sentinel's deprecated polling connector (HTTP Data Collector API: `_s`/`_d` suffixes, nested
    # objects flattened with `_`). Names from Sentinel's GitHubAuditData parser; the rest follow the
    # same flattening rule. All optional, as in that parser.
    "github_audit_log_polling": Preset(
        name="github_audit_log_polling",
        table="GitHubAuditLogPolling_CL",
        timestamp=(SourceColumn("created_at_d", "epoch_ms", optional=True), SourceColumn("TimeGenerated", "datetime")),
        columns={
            "action": SourceColumn("action_s", optional=True),
            "actor": SourceColumn("actor_s", optional=True),
            "org": SourceColumn("org_s", optional=True),
            "repo": SourceColumn("repo_s", optional=True),
            "user": SourceColumn("user_s", optional=True),
            "country_code": SourceColumn("actor_location_country_code_s", optional=True),
            "permission": SourceColumn("permission_s", optional=True),
            "visibility": SourceColumn("visibility_s", optional=True),
            "actor_ip": SourceColumn("actor_ip_s", optional=True),
            "actor_id": SourceColumn("actor_id_d", "number", optional=True),
            "operation_type": SourceColumn("operation_type_s", optional=True),
            "transport_protocol_name": SourceColumn("transport_protocol_name_s", optional=True),
            "programmatic_access_type": SourceColumn("programmatic_access_type_s", optional=True),
            "user_agent": SourceColumn("user_agent_s", optional=True),
            "business": SourceColumn("business_s", optional=True),
        },
    ),
    # The codeless (CCF) connector's table: PascalCase columns, TimeGenerated = GitHub's @timestamp.
    "github_audit_logs_v2": Preset(
        name="github_audit_logs_v2",
        table="GitHubAuditLogsV2_CL",
        timestamp=(SourceColumn("TimeGenerated", "datetime"),),
        columns={
            "document_id": SourceColumn("DocumentId"),
            "action": SourceColumn("Action"),
            "actor": SourceColumn("Actor"),
            "actor_id": SourceColumn("ActorId", "number"),
            "actor_ip": SourceColumn("ActorIp"),
            "country_code": SourceColumn("CountryCode"),
            "org": SourceColumn("Org"),
            "repo": SourceColumn("Repo"),
            "user": SourceColumn("User"),
            "operation_type": SourceColumn("OperationType"),
            "transport_protocol_name": SourceColumn("TransportProtocolName"),
            "programmatic_access_type": SourceColumn("ProgrammaticAccessType"),
            "user_agent": SourceColumn("UserAgent"),
            "business": SourceColumn("Business"),
            "visibility": SourceColumn("Visibility"),
            "permission": SourceColumn("Permission"),
        },
    ),
}


@dataclass(frozen=True)
class ColumnMapping:
    """The resolved mapping: the workspace table, the timestamp sources, and canonical -> source (None = absent)."""

    table: str
    timestamp: tuple[SourceColumn, ...]
    columns: dict[str, Optional[SourceColumn]]


def check_identifier(value: str, key: str) -> str:
    """Return `value` if it is a plain KQL identifier, else raise ConfigError naming `key`."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise ConfigError(
            f"config key '{key}': {value!r} is not a valid table/column name "
            "(letters, digits and underscores only, not starting with a digit)"
        )
    return value


def get_preset(name: str) -> Preset:
    """The preset called `name`, or ConfigError listing the known ones."""
    if name not in PRESETS:
        raise ConfigError(f"config key 'source.preset': {name!r} is not one of {sorted(PRESETS)}")
    return PRESETS[name]


def _parse_override(canonical: str, value: str) -> Optional[SourceColumn]:
    """`Col`, `Col:kind`, or '' (the workspace has no such column) from `source.columns.<canonical>`."""
    key = f"source.columns.{canonical}"
    if value is None or value == "":
        if canonical == "timestamp":
            raise ConfigError(f"config key '{key}': the timestamp column cannot be empty")
        return None
    name, _, kind = str(value).partition(":")
    kinds = TIMESTAMP_KINDS if canonical == "timestamp" else VALUE_KINDS
    if kind and kind not in kinds:
        raise ConfigError(f"config key '{key}': kind {kind!r} in {value!r} is not one of {list(kinds)}")
    return SourceColumn(check_identifier(name, key), kind or "")


def resolve_mapping(
    preset: str, table: Optional[str] = None, columns: Optional[Mapping[str, str]] = None
) -> ColumnMapping:
    """Apply the config's `table` and `columns` overrides to a preset, validating every name."""
    base = get_preset(preset)
    resolved_table = check_identifier(table, "source.table") if table else base.table
    mapped: dict[str, Optional[SourceColumn]] = {c: base.columns.get(c) for c in MAPPABLE_COLUMNS if c != "timestamp"}
    timestamp = base.timestamp
    for canonical, value in (columns or {}).items():
        if canonical not in MAPPABLE_COLUMNS:
            raise ConfigError(
                f"config key 'source.columns.{canonical}': not a canonical column; expected one of {MAPPABLE_COLUMNS}"
            )
        override = _parse_override(canonical, value)
        if canonical == "timestamp":
            assert override is not None
            timestamp = (SourceColumn(override.name, override.kind or base.timestamp[0].kind),)
        else:
            mapped[canonical] = None if override is None else SourceColumn(override.name, override.kind or "string")
    return ColumnMapping(table=resolved_table, timestamp=timestamp, columns=mapped)


def _ref(col: SourceColumn) -> str:
    if col.optional:
        return f"column_ifexists('{col.name}', {_DEFAULTS[col.kind]})"
    return f"['{col.name}']"


def _timestamp_expr(col: SourceColumn) -> str:
    if col.kind == "datetime":
        return f"datetime_diff('millisecond', {_ref(col)}, {_EPOCH})"
    return f"tolong({_ref(col)})"


def _value_expr(col: Optional[SourceColumn]) -> str:
    if col is None:
        return "''"
    if col.kind == "number":
        return f"tostring(tolong({_ref(col)}))"
    return f"tostring({_ref(col)})"


def mapping_query(preset: str, table: Optional[str] = None, columns: Optional[Mapping[str, str]] = None) -> str:
    """`<table> | project <canonical columns>`: the deployment's table seen as the canonical events table.

    Datetime sources become epoch ms, numbers become integer strings, absent columns typed empty values,
    so the result has the same columns and types whatever the deployment.
    """
    mapping = resolve_mapping(preset, table, columns)
    stamps = [_timestamp_expr(c) for c in mapping.timestamp]
    exprs = {"timestamp": stamps[0] if len(stamps) == 1 else f"coalesce({', '.join(stamps)})",
             "source_file": f"'{mapping.table}'", "source_line": "long(null)"}
    parts = [f"['{c}'] = {exprs[c] if c in exprs else _value_expr(mapping.columns[c])}" for c in CANONICAL_COLUMNS]
    body = ",\n    ".join(parts)
    return f"['{mapping.table}']\n| project\n    {body}"


def prelude(preset: str, table: Optional[str] = None, columns: Optional[Mapping[str, str]] = None) -> str:
    """`let GH_Audit_Logs_CL = <mapping_query>;`, sent ahead of the inline kql/ functions."""
    return f"let {KQL_TABLE} = {mapping_query(preset, table, columns)};"


def reads_table_directly(
    preset: str, table: Optional[str] = None, columns: Optional[Mapping[str, str]] = None
) -> bool:
    """True when the workspace table already is `GH_Audit_Logs_CL` with the preset's own names (no overrides)."""
    resolve_mapping(preset, table, columns)
    return preset == "gh_audit_logs_cl" and (table or KQL_TABLE) == KQL_TABLE and not columns
