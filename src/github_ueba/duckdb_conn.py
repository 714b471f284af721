"""DuckDB connections with the project's resource settings (one place to bound memory and threads)."""

from __future__ import annotations

import os

import duckdb

#: Environment variables read for every connection: a DuckDB size ("3GB") and a thread count.
MEMORY_ENV = "GITHUB_UEBA_DUCKDB_MEMORY"
THREADS_ENV = "GITHUB_UEBA_DUCKDB_THREADS"


def connect(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection; `memory_limit` (or env GITHUB_UEBA_DUCKDB_MEMORY) caps it, spilling to disk."""
    con = duckdb.connect()
    limit = memory_limit or os.environ.get(MEMORY_ENV)
    if limit:
        con.execute("SET memory_limit = ?", [limit])
    threads = os.environ.get(THREADS_ENV)
    if threads:
        con.execute("SET threads = ?", [int(threads)])
    return con
