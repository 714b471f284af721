"""Writing audit events as GitHub-export NDJSON (null fields left out, optional gzip), atomically."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa

from github_ueba import duckdb_conn
from github_ueba.sources.normalize import copy_atomically, quote_identifier, quote_literal


def write_ndjson(table: pa.Table, path: str | Path, omit_nulls: bool = True) -> Path:
    """Write audit events as NDJSON through DuckDB `COPY`, atomically; gzip when the name ends in `.gz`.

    With `omit_nulls` (default) a null field is left out of its line, as in GitHub's exports; each
    line is then assembled in SQL from the columns (about as fast as DuckDB's own JSON writer, which
    `omit_nulls=False` uses and which writes nulls as `null`).
    """
    target = Path(path)
    compression = "gzip" if target.suffix == ".gz" else "none"
    if omit_nulls:
        query = f"SELECT {_ndjson_line_sql(table.schema)} FROM raw_events"
        options = f"FORMAT CSV, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x1f', COMPRESSION {compression}"
    else:
        query, options = "SELECT * FROM raw_events", f"FORMAT JSON, COMPRESSION {compression}"
    con = duckdb_conn.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("raw_events", table)
        copy_atomically(con, query, target, options)
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
        column = quote_identifier(f.name)
        if pa.types.is_integer(f.type):
            value = f"CAST({column} AS VARCHAR)"
        elif pa.types.is_struct(f.type):
            value = f"json_strip_nulls(to_json({column}))"
        else:
            value = f"to_json({column})"
        pieces.append(f"{quote_literal(json.dumps(f.name) + ':')} || {value}")
    return "'{' || concat_ws(',', " + ", ".join(pieces) + ") || '}'"
