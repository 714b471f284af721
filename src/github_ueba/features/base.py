"""Base features per (actor, UTC day): the kql/ functions run locally on DuckDB through duckdb-kql.

duckdb-kql (in a subprocess, see `kql_runner`) only translates the KQL to DuckDB SQL; the SQL runs
here, on an in-process DuckDB connection over views of the Parquet files, so no rows are copied
between processes and DuckDB streams the files (scans are pushed down to the Parquet readers).
The events file is registered directly as the view `GH_Audit_Logs_CL` with no prelude: a
`let GH_Audit_Logs_CL = Events;` prelude becomes a CTE with many consumers that DuckDB
materializes (more CPU and memory for nothing).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from github_ueba import duckdb_conn
from github_ueba.config import FeaturesConfig
from github_ueba.errors import InputError
from github_ueba.events import EVENT_SCHEMA, KQL_TABLE
from github_ueba.kql_runner import translate
from github_ueba.kqltext import features_query, stored_functions
from github_ueba.sources.normalize import quote_identifier, quote_literal

#: Counts of the high-risk action groups of kql/ActorDayFeatures.kql (security-relevant changes).
RISK_GROUP_COLUMNS: tuple[str, ...] = (
    "protection_changes",
    "secret_scanning_disabled",
    "security_alerts_disabled",
    "org_security_weakened",
    "access_granted",
    "persistence",
    "repo_exposure",
    "members_removed",
)

#: Output columns of kql/ActorDayFeatures.kql, in order (see that file's header for meanings).
BASE_FEATURE_COLUMNS: tuple[str, ...] = (
    "actor",
    "day",
    "events",
    "is_weekend",
    "git_clone",
    "git_fetch",
    "git_push",
    "repo_download",
    "unique_repos",
    "unique_ips",
    "unique_countries",
    "unique_actions",
    "new_repos",
    "new_repo_clones",
    "new_repo_pushes",
    "new_repo_downloads",
    "off_hours_events",
    "first_seen_ips",
    "first_seen_countries",
    "first_seen_repos",
    "first_seen_actions",
    "shared_new_repos",
    "shared_new_repo_clones",
    "shared_first_seen_repos",
    *RISK_GROUP_COLUMNS[:-1],
    "repo_create",
    RISK_GROUP_COLUMNS[-1],
    "deploy_key_events",
    "is_leaver",
    "days_to_removal",
)

#: Event columns the kql/ functions read.
REQUIRED_EVENT_COLUMNS: tuple[str, ...] = (
    "timestamp", "actor", "action", "repo", "actor_ip", "country_code", "user", "visibility", "permission",
    "programmatic_access_type",
)


def _table_columns(name: str, path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: no such Parquet file (table {name!r})")
    try:
        return list(pq.read_schema(path).names)
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file (table {name!r}): {err}") from None


#: A CTE definition in duckdb-kql's SQL: a quoted or generated name, then `AS (`.
_CTE_DEFINITION = re.compile(r'(\n\s*|WITH |, ?)("[^"]+"|_[sl]\d+[^ ]*) AS \(')


def inline_ctes(sql: str) -> str:
    """Mark every CTE `NOT MATERIALIZED`: DuckDB then streams each reader from Parquet instead of holding
    the audit history in memory once per query, so the query can spill under a memory limit
    (`GITHUB_UEBA_DUCKDB_MEMORY`); materialized, it fails with "Out of Memory" under a cap instead.
    `benchmarks/bench_ingest.py` prints time and peak memory with and without such a cap."""
    return _CTE_DEFINITION.sub(r"\1\2 AS NOT MATERIALIZED (", sql)


def run_kql(query: str, tables: dict[str, Path], functions: list[str] | None = None) -> pa.Table:
    """Run any KQL over Parquet files: `tables` maps each table name the query reads to its file.

    The query may call the kql/ functions (passed as stored functions; `functions` overrides them).
    """
    paths = {name: Path(path) for name, path in tables.items()}
    schema = {name: _table_columns(name, path) for name, path in paths.items()}
    translation = translate(query, stored_functions() if functions is None else functions, schema)
    with duckdb_conn.connect() as con:
        con.execute("SET TimeZone='UTC'")
        con.execute("SET enable_progress_bar=false")
        con.execute("SET preserve_insertion_order=false")  # callers sort; lets big aggregates spill
        for name, path in paths.items():
            con.execute(
                f"CREATE VIEW {quote_identifier(name)} AS SELECT * FROM read_parquet({quote_literal(str(path))})"
            )
        return con.sql(inline_ctes(translation.sql), params=translation.parameters or None).to_arrow_table()


def empty_base_features() -> pd.DataFrame:
    """The base-features frame with no rows (an empty window), typed like a full one."""
    columns: dict[str, pd.Series] = {
        "actor": pd.Series(dtype="str"),
        "day": pd.Series(dtype="datetime64[us]"),
    }
    columns.update({name: pd.Series(dtype="int64") for name in BASE_FEATURE_COLUMNS[2:]})
    return pd.DataFrame(columns)


def base_features(
    events_parquet: Path, start: dt.date, end: dt.date, history_start: dt.date, settings: FeaturesConfig
) -> pd.DataFrame:
    """Base features for days [start, end) from an EVENT_SCHEMA Parquet file, history from `history_start`.

    Keys: `actor` (str) and `day` (datetime64, tz-naive UTC midnight); every other column int64;
    rows sorted by actor, day. Bots are not marked here.
    """
    events_parquet = Path(events_parquet)
    columns = _table_columns(KQL_TABLE, events_parquet)
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in columns]
    if missing:
        raise InputError(
            f"{events_parquet}: missing event columns {missing} (expected github_ueba.events.EVENT_SCHEMA: "
            f"{', '.join(EVENT_SCHEMA.names)})"
        )
    query = features_query(
        start,
        end,
        history_start,
        new_repo_days=settings.new_repo_days,
        off_hours_z=settings.off_hours_z,
        prelude="",
        inline=False,
    )
    table = run_kql(query, {KQL_TABLE: events_parquet})
    if table.num_rows == 0:
        return empty_base_features()
    frame = table.select(list(BASE_FEATURE_COLUMNS)).to_pandas()
    frame["actor"] = frame["actor"].astype("str")
    ints = list(BASE_FEATURE_COLUMNS[2:])
    frame[ints] = frame[ints].astype("int64")
    return frame.sort_values(["actor", "day"], kind="stable").reset_index(drop=True)
