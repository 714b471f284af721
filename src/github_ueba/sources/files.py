"""Read GitHub audit-log exports (`source=files`): NDJSON/JSONL, JSON arrays, gzip, and the web-UI CSV.

NDJSON takes two paths. The fast one: DuckDB's `read_json` (one row per non-blank line, NULLs for a bad
line) extracts the fields, and a numpy scan of the line breaks turns row numbers into file lines.
Every record the fast path cannot settle (rejected, or `action`/`actor` not looking like a string) is
re-read exactly: the lines are split in numpy, handed to DuckDB as raw bytes, validated and parsed one
by one (`json_records_sql`), so each rejected line keeps its file, 1-based line, text and precise
reason, and one bad line never fails a file. The line splitting and the exact path live in `lines.py`;
this module finds the files, picks the path per file and layout, and writes the results.
`normalize.py` maps the fields onto `EVENT_SCHEMA`.
"""

from __future__ import annotations

import glob
import gzip
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from github_ueba import duckdb_conn
from github_ueba.errors import InputError
from github_ueba.events import EVENT_SCHEMA
from github_ueba.io import atomic_path
from github_ueba.sources.lines import (
    LINE_MASK,
    ORDER_SHIFT,
    UTF8_BOM,
    ExportFile,
    LineScan,
    looks_unlike_string,
    open_binary,
    scan_lines,
    stage_json_text,
    stage_lines_exactly,
)
from github_ueba.sources.normalize import (
    GITHUB_FIELDS,
    MAX_RECORD_CHARS,
    NDJSON_OPTIONS,
    PARQUET_WRITER_OPTIONS,
    RECORD_COLUMN,
    REJECTED_SCHEMA,
    NormalizeResult,
    Staging,
    copy_atomically,
    quote_identifier,
    quote_literal,
)

#: The reader's public API (`ExportFile`, `LineScan` and `scan_lines` come from `lines.py`).
__all__ = [
    "AUDIT_SUFFIXES",
    "FAST_COLUMNS",
    "MAX_JSON_VALUE_BYTES",
    "ExportFile",
    "LineScan",
    "ReadResult",
    "describe_file",
    "discover_exports",
    "read_exports",
    "read_exports_to",
    "scan_lines",
    "stage_exports",
    "write_events",
    "write_rejected",
]

#: File names the reader picks up in a folder or glob (GitHub's export and streaming formats).
AUDIT_SUFFIXES: tuple[str, ...] = (
    ".json", ".ndjson", ".jsonl", ".json.gz", ".ndjson.gz", ".jsonl.gz", ".csv", ".csv.gz",
)
#: Top-level keys the fast path reads: all as VARCHAR (objects become JSON text), but `actor_location`,
#: a struct (`read_json` gives a NULL country code where it is no object, instead of failing the row).
FAST_COLUMNS: dict[str, str] = {
    **{name: "VARCHAR" for name in GITHUB_FIELDS},
    "actor_location": "STRUCT(country_code VARCHAR)",
}
#: Largest top-level JSON value accepted in a file of concatenated arrays (`gh api --paginate` output).
MAX_JSON_VALUE_BYTES = 1024 * 1024 * 1024

ReadResult = NormalizeResult

log = logging.getLogger(__name__)


@dataclass
class _Tally:
    """What the reader saw besides the normalized records."""

    files: int = 0
    empty_files: int = 0
    blank_lines: int = 0
    exact_path_files: list[str] = field(default_factory=list)
    not_json_arrays: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------ finding files


def _is_audit_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(AUDIT_SUFFIXES)


def discover_exports(path: str | Path) -> list[Path]:
    """The audit files at `path` (a file, a folder searched recursively, or a glob), sorted by path."""
    given = Path(path)
    if given.is_file():
        return [given]
    if given.is_dir():
        found = sorted(f for f in given.rglob("*") if f.is_file() and _is_audit_name(f.name))
        if not found:
            raise InputError(f"{given}: folder holds no audit-log files ({', '.join(AUDIT_SUFFIXES)})")
        return found
    if glob.has_magic(str(path)):
        matches = [Path(m) for m in glob.glob(str(path), recursive=True)]
        candidates = {f for m in matches for f in ([m] if m.is_file() else m.rglob("*"))}
        found = sorted(f for f in candidates if f.is_file() and _is_audit_name(f.name))
        if not found:
            raise InputError(f"{path}: no audit-log files ({', '.join(AUDIT_SUFFIXES)}) match this pattern")
        return found
    raise InputError(f"{path}: no such file or folder")


def describe_file(index: int, path: Path) -> ExportFile:
    """Sniff compression and layout: CSV by name; JSON starting with `[` is an array, else NDJSON lines."""
    try:
        with open_binary(path) as stream:
            compression = "gzip" if isinstance(stream, gzip.GzipFile) else "none"
            head = stream.read(65536)
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: cannot read: {err}") from None
    if not head:
        layout = "empty"
    elif path.name.lower().endswith((".csv", ".csv.gz")):
        layout = "csv"
    elif head.removeprefix(UTF8_BOM).lstrip().startswith(b"["):
        layout = "array"
    else:
        layout = "lines"
    return ExportFile(index, path, layout, compression)


# ------------------------------------------------------------------------------- fast NDJSON path

_FAST_REDO_SQL = (
    f"reject_reason IS NOT NULL OR {looks_unlike_string('action')} OR {looks_unlike_string('actor')}"
)


def _blank_line_map(staging: Staging, export: ExportFile, blank: np.ndarray) -> str:
    """Register row -> line corrections for a file with blank lines; return the table name.

    `read_json` skips blank lines: the row before which k blank lines sit is k lines further down.
    For blank line b_i (i = 1..), rows after b_i - i are shifted by at least i.
    """
    after_rows = blank - np.arange(1, blank.size + 1)
    last_of_run = np.append(after_rows[1:] != after_rows[:-1], True)
    table = pa.table({"after_row": after_rows[last_of_run], "shift": np.flatnonzero(last_of_run) + 1})
    name = f"blank_map_{export.index}"
    staging.con.register(name, table)
    return name


def _stage_ndjson_fast(staging: Staging, export: ExportFile) -> LineScan | None:
    """Stage one NDJSON file with `read_json`; rows to settle exactly are marked for redo.

    Returns the line scan, or None when the fast path does not apply (DuckDB failed, or its row count
    disagrees with the non-blank lines): the caller then reads the whole file on the exact path.
    """
    scan = scan_lines(export)
    columns = "{" + ", ".join(f"{quote_literal(c)}: {quote_literal(t)}" for c, t in FAST_COLUMNS.items()) + "}"
    rows = f"""(SELECT ordinality AS _row, * FROM read_json({quote_literal(str(export.path))},
                format='newline_delimited', columns={columns}, ignore_errors=true,
                compression={quote_literal(export.compression)}) WITH ORDINALITY)"""
    if scan.blank.size:
        blank_map = _blank_line_map(staging, export, scan.blank)
        relation = f"""(SELECT r.*, r._row + coalesce(m.shift, 0) AS _line
                       FROM {rows} AS r ASOF LEFT JOIN {blank_map} AS m ON r._row > m.after_row)"""
    else:
        relation = f"(SELECT *, _row AS _line FROM {rows})"
    order = f"{export.order_base} + _line"
    try:
        staged = staging.insert(
            relation, quote_literal(str(export.path)), "_line", order, redo_sql=_FAST_REDO_SQL,
            columns={**FAST_COLUMNS, "_row": "BIGINT", "_line": "BIGINT"},
        )
    except duckdb.Error:
        return None
    finally:
        if scan.blank.size:
            staging.con.unregister(blank_map)
    if staged != scan.lines - scan.blank.size:
        staging.delete_orders(export.order_base, export.order_base + LINE_MASK + 1)
        return None
    return scan


def _redo_exactly(staging: Staging, files: dict[int, ExportFile], scans: dict[int, LineScan]) -> None:
    """Re-read the rows the fast path marked, line by line, on the exact path (in place where possible)."""
    orders = staging.pop_redo()
    if not orders.size:
        return
    file_idx, lines = orders >> ORDER_SHIFT, orders & LINE_MASK
    wanted = {int(i): lines[file_idx == i] for i in np.unique(file_idx)}
    bounds = {i: scans[i].bounds for i in wanted if scans[i].bounds is not None}
    stage_lines_exactly(staging, [files[i] for i in sorted(wanted)], wanted, bounds)


def _stage_ndjson(staging: Staging, files: list[ExportFile], tally: _Tally, exact_only: bool) -> None:
    """Stage NDJSON files: the fast path where it applies, the exact path for the rest and the marked rows."""
    exact = list(files) if exact_only else []
    scans: dict[int, LineScan] = {}
    for export in [] if exact_only else files:
        scan = _stage_ndjson_fast(staging, export)
        if scan is None:
            exact.append(export)
            continue
        scans[export.index] = scan
        tally.blank_lines += int(scan.blank.size)
        tally.empty_files += scan.lines == scan.blank.size
    _redo_exactly(staging, {f.index: f for f in files}, scans)
    if exact:
        batches = stage_lines_exactly(staging, exact)
        tally.blank_lines += batches.blank_lines
        tally.empty_files += sum(n == 0 for n in batches.records_per_file.values())
        if not exact_only:
            tally.exact_path_files += [str(f.path) for f in exact]


# ---------------------------------------------------------------------------------- JSON arrays


def _array_text_sql(export: ExportFile, concatenated: bool) -> str:
    """JSON text per array element with its 1-based index; `concatenated` reads `[...][...]` page streams."""
    path, comp = quote_literal(str(export.path)), quote_literal(export.compression)
    head = f"{path} AS _source_file, {export.index} AS _file_idx"
    if not concatenated:
        return f"""(SELECT {head}, ordinality AS _line, CAST(json AS VARCHAR) AS _text, CAST(json AS VARCHAR) AS _record
            FROM read_json({path}, format='array', records=false, columns={{'json': 'JSON'}}, compression={comp})
            WITH ORDINALITY)"""
    pages = f"""SELECT ordinality AS page,
            CASE WHEN json_type(json) = 'ARRAY' THEN CAST(json AS JSON[]) ELSE [json] END AS elements
        FROM read_json({path}, format='unstructured', records=false, columns={{'json': 'JSON'}},
                       compression={comp}, maximum_object_size={MAX_JSON_VALUE_BYTES}) WITH ORDINALITY"""
    return f"""(SELECT {head}, _line, CAST(element AS VARCHAR) AS _text, CAST(element AS VARCHAR) AS _record FROM (
            SELECT unnest(elements) AS element, unnest(range(1, len(elements) + 1)) + page_offset AS _line
            FROM (SELECT elements, sum(len(elements)) OVER (ORDER BY page) - len(elements) AS page_offset
                  FROM ({pages}))))"""


def _stage_arrays(staging: Staging, files: list[ExportFile], tally: _Tally) -> list[ExportFile]:
    """Stage JSON-array files (`source_line` = element number); return those that are no JSON array."""
    not_arrays = []
    for export in files:
        for concatenated in (False, True):
            try:
                tally.empty_files += stage_json_text(staging, _array_text_sql(export, concatenated)) == 0
                break
            except duckdb.Error:
                continue
        else:
            not_arrays.append(export)
            tally.not_json_arrays.append(str(export.path))
    return not_arrays


# ------------------------------------------------------------------------------------------- CSV


def _stage_csv(staging: Staging, export: ExportFile) -> int:
    """Stage a web-UI CSV export; malformed rows are rejected with DuckDB's reason. Returns the rows read.

    `source_line` is the record number + 1 (the header), i.e. the file line unless fields hold newlines.
    """
    con = staging.con
    rows, rejects, scans, bad = (f"csv_{kind}_{export.index}" for kind in ("rows", "rejects", "scans", "bad"))
    try:
        con.execute(
            f"""CREATE TEMP TABLE {rows} AS SELECT ordinality AS _csv_record, * FROM read_csv(
                {quote_literal(str(export.path))}, header=true, all_varchar=true, delim=',', quote='"', escape='"',
                compression={quote_literal(export.compression)}, ignore_errors=true, store_rejects=true,
                rejects_table={quote_literal(rejects)}, rejects_scan={quote_literal(scans)}) WITH ORDINALITY"""
        )
    except duckdb.Error as err:
        raise InputError(f"{export.path}: cannot read as CSV: {err}") from None
    con.execute(
        f"""CREATE TEMP TABLE {bad} AS
            SELECT line, row_number() OVER (ORDER BY line) AS rank,
                   'malformed CSV row: ' || lower(arg_min(error_type, column_idx)) AS reason,
                   left(arg_min(csv_line, column_idx), {MAX_RECORD_CHARS}) AS record
            FROM {rejects} GROUP BY line"""
    )
    bad_rows = con.execute(
        f"""INSERT INTO staged BY NAME SELECT {quote_literal(str(export.path))} AS source_file, line AS source_line,
            {export.order_base} + line AS _order, reason AS reject_reason, record FROM {bad}"""
    ).fetchone()[0]
    names = [r[0] for r in con.execute(f"DESCRIBE {rows}").fetchall() if r[0] != "_csv_record"]
    as_json = "{" + ", ".join(f"{quote_literal(n)}: r.{quote_identifier(n)}" for n in names) + "}"
    # DuckDB numbers CSV records, not lines: a record's line is its number + 1 + the rejected records before it
    line = f"r._csv_record + 1 + (SELECT count(*) FROM {bad} b WHERE b.line - 1 - b.rank < r._csv_record)"
    record = f"CAST(to_json({as_json}) AS VARCHAR) AS {RECORD_COLUMN}"
    relation = f"(SELECT r.*, {line} AS _csv_line, {record} FROM {rows} r)"
    good_rows = staging.insert(
        relation, quote_literal(str(export.path)), "_csv_line", f"{export.order_base} + _csv_line"
    )
    for table in (rows, bad, rejects, scans):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return int(good_rows + bad_rows)


# ---------------------------------------------------------------------------------------- public


def stage_exports(staging: Staging, path: str | Path, exact_only: bool = False) -> dict[str, Any]:
    """Read every audit file at `path` into `staging`; return the counts (raises `InputError` if none).

    `exact_only` reads NDJSON line by line only (about 3x slower; the fast path must give the same result).
    """
    files = [describe_file(i, p) for i, p in enumerate(discover_exports(path))]
    log.info("reading %d export files under %s (%.1f MB)", len(files), path,
             sum(f.path.stat().st_size for f in files) / 1e6)
    tally = _Tally(files=len(files), empty_files=sum(f.layout == "empty" for f in files))
    not_arrays = _stage_arrays(staging, [f for f in files if f.layout == "array"], tally)
    _stage_ndjson(staging, [f for f in files if f.layout == "lines"] + not_arrays, tally, exact_only)
    for export in (f for f in files if f.layout == "csv"):
        tally.empty_files += _stage_csv(staging, export) == 0
    counts: dict[str, Any] = {"files": tally.files, "empty_files": tally.empty_files, **staging.finish()}
    counts["blank_lines"] = tally.blank_lines
    if tally.not_json_arrays:
        counts["not_json_arrays"] = tally.not_json_arrays
    if tally.exact_path_files:
        counts["exact_path_files"] = tally.exact_path_files
    if counts["records_read"] == 0:
        raise InputError(f"no audit events in {path}: {tally.files} file(s), all empty")
    return counts


def read_exports(path: str | Path, exact_only: bool = False) -> ReadResult:
    """Read GitHub audit-log exports at `path` (file, folder or glob) into normalized events in memory.

    For inputs that fit in memory (tests, small exports); the ingest stage uses `read_exports_to`.
    """
    with Staging() as staging:
        counts = stage_exports(staging, path, exact_only)
        return ReadResult(staging.events_table(), staging.rejected_table(), counts)


def read_exports_to(
    path: str | Path,
    events_path: str | Path,
    rejected_path: str | Path | None = None,
    work_dir: str | Path | None = None,
    memory_limit: str | None = None,
) -> dict[str, Any]:
    """Stream exports at `path` into `events_path` (Parquet) and `rejected_path` (NDJSON); return counts.

    No Python loop over records; DuckDB spills to `work_dir` (default: next to `events_path`, on the
    same disk) beyond `memory_limit` (e.g. "2GB"); outputs are replaced atomically.
    """
    scratch = Path(work_dir) if work_dir is not None else Path(events_path).parent
    scratch.mkdir(parents=True, exist_ok=True)
    with Staging(scratch, memory_limit) as staging:
        counts = stage_exports(staging, path)
        staging.write_events(events_path)
        if rejected_path is not None:
            staging.write_rejected(rejected_path)
    return counts


def write_events(events: pa.Table, path: str | Path) -> None:
    """Write an events table (`EVENT_SCHEMA`) as Parquet, atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(events.cast(EVENT_SCHEMA), tmp, **PARQUET_WRITER_OPTIONS)


def write_rejected(rejected: pa.Table, path: str | Path) -> None:
    """Write rejected records (`REJECTED_SCHEMA`) as NDJSON, one JSON object per line, atomically."""
    with duckdb_conn.connect() as con:
        con.register("rejected_records", rejected.cast(REJECTED_SCHEMA))
        copy_atomically(con, "SELECT * FROM rejected_records", path, NDJSON_OPTIONS)
