"""Read GitHub audit-log exports (`source=files`): NDJSON/JSONL, JSON arrays, gzip, and the web-UI CSV.

NDJSON lines are split in numpy and handed to DuckDB as Arrow batches of raw bytes, so every record keeps
its file and 1-based line, one bad line (malformed JSON, invalid UTF-8) never fails the file, and files
larger than memory stream through. DuckDB parses the JSON; `normalize.py` maps it onto `EVENT_SCHEMA`.
"""

from __future__ import annotations

import glob
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import numpy as np
import pyarrow as pa

from github_ueba.errors import InputError
from github_ueba.events import EVENT_SCHEMA
from github_ueba.sources.normalize import (
    MAX_RECORD_CHARS,
    NDJSON_OPTIONS,
    PARQUET_OPTIONS,
    REJECTED_SCHEMA,
    RECORD_COLUMN,
    STRING_FIELDS,
    TIMESTAMP_FIELDS,
    UPSTREAM_REASON_COLUMN,
    NormalizeResult,
    Staging,
    copy_atomically,
    quote_identifier,
    quote_literal,
)

#: File names the reader picks up in a folder or glob (GitHub's export and streaming formats).
AUDIT_SUFFIXES: tuple[str, ...] = (
    ".json", ".ndjson", ".jsonl", ".json.gz", ".ndjson.gz", ".jsonl.gz", ".csv", ".csv.gz",
)
#: Column -> JSON paths it is extracted from (first non-null wins); all other keys are ignored.
JSON_FIELD_PATHS: dict[str, tuple[str, ...]] = {
    **{name: (f'$."{name}"',) for name in TIMESTAMP_FIELDS},
    **{name: (f'$."{name}"',) for names in STRING_FIELDS.values() for name in names},
    "actor_location.country_code": ('$."actor_location"."country_code"', '$."actor_location.country_code"'),
    "country_code": ('$."country_code"',),
}
#: The fields that must hold JSON strings; anything else (an object, a number) rejects the record.
STRING_ONLY_FIELDS: tuple[str, ...] = ("action", "actor")
#: Bytes read per NDJSON batch.
CHUNK_BYTES = 32 * 1024 * 1024
#: Largest top-level JSON value accepted in a file of concatenated arrays (`gh api --paginate` output).
MAX_JSON_VALUE_BYTES = 1024 * 1024 * 1024

ReadResult = NormalizeResult
_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
_ORDER_SHIFT = 40  # _order = file index << 40 | line: "first" means first file (sorted), then first line


@dataclass(frozen=True)
class ExportFile:
    """One input file: its position in the sorted input (decides which duplicate is first) and layout."""

    index: int
    path: Path
    layout: str  # "lines" (NDJSON), "array" (JSON array(s)), "csv", or "empty"
    compression: str  # "gzip" or "none"


@dataclass
class _FileTally:
    """What the reader saw, beyond the normalized records."""

    files: int = 0
    empty_files: int = 0
    blank_lines: int = 0
    unparsed_arrays: list[str] = field(default_factory=list)


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
        found = sorted(
            {f for m in matches for f in ([m] if m.is_file() else m.rglob("*")) if f.is_file() and _is_audit_name(f.name)}
        )
        if not found:
            raise InputError(f"{path}: no audit-log files ({', '.join(AUDIT_SUFFIXES)}) match this pattern")
        return found
    raise InputError(f"{path}: no such file or folder")


def _open_binary(path: Path) -> BinaryIO:
    """The file's bytes, gunzipped when it starts with the gzip magic number (whatever its name)."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")


def _describe_file(index: int, path: Path) -> ExportFile:
    """Sniff compression and layout: CSV by name; JSON starting with `[` is an array, else NDJSON lines."""
    try:
        with open(path, "rb") as probe:
            compression = "gzip" if probe.read(2) == _GZIP_MAGIC else "none"
        with _open_binary(path) as stream:
            head = stream.read(65536)
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: cannot read: {err}") from None
    text = head.removeprefix(_UTF8_BOM).lstrip()
    name = path.name.lower()
    if not head:
        layout = "empty"
    elif name.endswith((".csv", ".csv.gz")):
        layout = "csv"
    elif text.startswith(b"["):
        layout = "array"
    else:
        layout = "lines"
    return ExportFile(index, path, layout, compression)


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    """Fill `view` from `stream` (gzip streams return short reads); return the bytes read."""
    filled = 0
    while filled < len(view):
        n = stream.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


_LINE_BATCH_SCHEMA = pa.schema(
    [
        ("_source_file", pa.dictionary(pa.int32(), pa.string())),
        ("_file_idx", pa.int32()),
        ("_line", pa.int64()),
        ("_raw", pa.large_binary()),
        ("_blank", pa.bool_()),
    ]
)


class LineBatches:
    """Arrow batches of raw NDJSON lines (bytes, 1-based line numbers) from files, split with numpy.

    Each line keeps its terminator (JSON ignores it); blank lines are flagged and counted. A read error
    (truncated gzip, unreadable file) is kept in `error` with the file named, and stops the stream.
    """

    def __init__(self, files: list[ExportFile], chunk_bytes: int = CHUNK_BYTES) -> None:
        self.files = files
        self.chunk_bytes = chunk_bytes
        self.lines_per_file: dict[Path, int] = {}
        self.blank_lines = 0
        self.error: InputError | None = None

    def reader(self) -> pa.RecordBatchReader:
        """A one-shot reader over all files, in order."""
        return pa.RecordBatchReader.from_batches(_LINE_BATCH_SCHEMA, self._batches())

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for export in self.files:
            try:
                yield from self._file_batches(export)
            except (OSError, EOFError, zlib.error) as err:
                self.error = InputError(f"{export.path}: cannot read: {err}")
                raise

    def _file_batches(self, export: ExportFile) -> Iterator[pa.RecordBatch]:
        dictionary = pa.array([str(export.path)], pa.string())
        carry = np.empty(0, np.uint8)
        lines_done = 0
        first_chunk = True
        with _open_binary(export.path) as stream:
            while True:
                buf = np.empty(carry.size + self.chunk_bytes, np.uint8)
                buf[: carry.size] = carry
                filled = carry.size + _read_into(stream, memoryview(buf)[carry.size :])
                at_end = filled < buf.size
                data = buf[:filled]
                start = 3 if first_chunk and data[:3].tobytes() == _UTF8_BOM else 0
                first_chunk = False
                ends = np.flatnonzero(data[start:] == 10) + start + 1
                if at_end and filled > (ends[-1] if ends.size else start):
                    ends = np.append(ends, filled)  # last line without a newline
                if ends.size:
                    yield self._batch(data, np.concatenate(([start], ends)), export, dictionary, lines_done)
                    lines_done += ends.size
                    carry = data[ends[-1] :].copy()
                else:
                    carry = data[start:].copy()
                if at_end:
                    break
        self.lines_per_file[export.path] = lines_done

    def _batch(
        self, data: np.ndarray, offsets: np.ndarray, export: ExportFile, dictionary: pa.Array, lines_done: int
    ) -> pa.RecordBatch:
        offsets = offsets.astype(np.int64)
        n = offsets.size - 1
        ends = offsets[1:]
        lengths = np.diff(offsets)
        has_lf = data[ends - 1] == 10
        has_cr = has_lf & (lengths >= 2) & (data[np.maximum(ends - 2, 0)] == 13)
        blank = (lengths - has_lf - has_cr) == 0
        self.blank_lines += int(blank.sum())
        raw = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        return pa.RecordBatch.from_arrays(
            [
                pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), dictionary),
                pa.array(np.full(n, export.index, np.int32)),
                pa.array(np.arange(lines_done + 1, lines_done + n + 1, dtype=np.int64)),
                raw,
                pa.array(blank),
            ],
            schema=_LINE_BATCH_SCHEMA,
        )


def _json_path_list() -> tuple[str, dict[str, list[int]]]:
    """The SQL list of every JSON path, and column -> 1-based positions of its paths in that list."""
    paths: list[str] = []
    positions: dict[str, list[int]] = {}
    for column, column_paths in JSON_FIELD_PATHS.items():
        positions[column] = []
        for json_path in column_paths:
            paths.append(json_path)
            positions[column].append(len(paths))
    return "[" + ", ".join(quote_literal(p) for p in paths) + "]", positions


def _not_string_check(value: str, json_path: str) -> str:
    """True where the JSON value is not a string; `json_type` runs only on values that look otherwise."""
    suspicious = (
        f"{value} IS NOT NULL AND (left({value}, 1) IN ('{{', '[') OR {value} IN ('true', 'false') "
        f"OR TRY_CAST({value} AS DOUBLE) IS NOT NULL)"
    )
    return f"{suspicious} AND json_type(_text, {quote_literal(json_path)}) <> 'VARCHAR'"


def json_records_sql(text_relation: str) -> str:
    """A SELECT extracting GitHub fields from JSON text, one record per row, with a reject reason.

    `text_relation` has `_source_file`, `_file_idx`, `_line`, `_text` (NULL when not UTF-8) and `_record`.
    Every output field is VARCHAR (see `JSON_COLUMNS`). `json_valid` guards the extraction, so malformed
    JSON is a reason, not a failed query (`try()` would be cheaper per row but falls back to row-at-a-time
    execution for every vector holding a bad line); `json_extract_string` on a list of paths parses once.
    """
    path_list, positions = _json_path_list()
    fields = []
    for column, idx in positions.items():
        values = [f"_v[{i}]" for i in idx]
        fields.append(f"{values[0] if len(values) == 1 else 'coalesce(' + ', '.join(values) + ')'} AS {quote_identifier(column)}")
    type_checks = " ".join(
        f"WHEN {_not_string_check(f'_v[{positions[name][0]}]', JSON_FIELD_PATHS[name][0])} THEN '{name} is not a string'"
        for name in STRING_ONLY_FIELDS
    )
    return f"""
SELECT _source_file, _file_idx, _line, _record, {", ".join(fields)},
    CASE
        WHEN _text IS NULL THEN 'invalid UTF-8'
        WHEN _v IS NULL THEN 'malformed JSON'
        WHEN left(_text, 1) <> '{{' AND NOT starts_with(ltrim(_text), '{{') THEN 'not a JSON object'
        {type_checks}
    END AS {UPSTREAM_REASON_COLUMN}
FROM (SELECT *, CASE WHEN json_valid(_text) THEN json_extract_string(_text, {path_list}) END AS _v
      FROM {text_relation})"""


#: Columns (all VARCHAR) of `json_records_sql` that the normalizer reads.
JSON_COLUMNS: dict[str, str] = {
    **{column: "VARCHAR" for column in JSON_FIELD_PATHS},
    UPSTREAM_REASON_COLUMN: "VARCHAR",
    RECORD_COLUMN: "VARCHAR",
}
_ORDER_SQL = f"(CAST(src._file_idx AS BIGINT) << {_ORDER_SHIFT}) + src._line"


def _stage_json_text(staging: Staging, text_relation: str) -> int:
    return staging.insert(f"({json_records_sql(text_relation)})", "src._source_file", "src._line", _ORDER_SQL, JSON_COLUMNS)


def _stage_lines(staging: Staging, files: list[ExportFile], tally: _FileTally) -> None:
    """Stream NDJSON files through DuckDB; a read error names the file."""
    if not files:
        return
    batches = LineBatches(files)
    staging.con.register("ndjson_lines", batches.reader())
    text = """(SELECT _source_file, _file_idx, _line, _text, coalesce(_text, CAST(_raw AS VARCHAR)) AS _record
              FROM (SELECT *, try(decode(_raw)) AS _text FROM ndjson_lines WHERE NOT _blank))"""
    try:
        _stage_json_text(staging, text)
    except duckdb.Error as err:
        if batches.error is not None:
            raise batches.error from None
        raise InputError(f"{', '.join(str(f.path) for f in files[:3])}: cannot read NDJSON: {err}") from None
    finally:
        staging.con.unregister("ndjson_lines")
    tally.blank_lines += batches.blank_lines
    tally.empty_files += sum(1 for n in batches.lines_per_file.values() if n == 0)


def _array_text_sql(export: ExportFile, concatenated: bool) -> str:
    """JSON text per array element with its 1-based index; `concatenated` reads `[...][...]` page streams."""
    path, comp = quote_literal(str(export.path)), quote_literal(export.compression)
    head = f"{quote_literal(str(export.path))} AS _source_file, {export.index} AS _file_idx"
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


def _stage_arrays(staging: Staging, files: list[ExportFile], tally: _FileTally) -> list[ExportFile]:
    """Stage JSON-array files; return those that are no JSON array after all (read them as lines)."""
    not_arrays = []
    for export in files:
        for concatenated in (False, True):
            try:
                tally.empty_files += _stage_json_text(staging, _array_text_sql(export, concatenated)) == 0
                break
            except duckdb.Error:
                continue
        else:
            not_arrays.append(export)
            tally.unparsed_arrays.append(str(export.path))
    return not_arrays


def _stage_csv(staging: Staging, export: ExportFile) -> bool:
    """Stage a web-UI CSV export; malformed rows are rejected with DuckDB's reason. True if it had rows."""
    con = staging.con
    rejects, scans, rows = f"csv_rejects_{export.index}", f"csv_scans_{export.index}", f"csv_rows_{export.index}"
    try:
        con.execute(
            f"""CREATE TEMP TABLE {rows} AS SELECT ordinality AS _csv_record, * FROM read_csv(
                {quote_literal(str(export.path))}, header=true, all_varchar=true, delim=',', quote='"', escape='"',
                compression={quote_literal(export.compression)}, ignore_errors=true, store_rejects=true,
                rejects_table={quote_literal(rejects)}, rejects_scan={quote_literal(scans)}) WITH ORDINALITY"""
        )
    except duckdb.Error as err:
        raise InputError(f"{export.path}: cannot read as CSV: {err}") from None
    order = f"(CAST({export.index} AS BIGINT) << {_ORDER_SHIFT})"
    con.execute(
        f"""CREATE TEMP TABLE bad_{rows} AS
            SELECT line, row_number() OVER (ORDER BY line) AS rank,
                   'malformed CSV row: ' || lower(arg_min(error_type, column_idx)) AS reason,
                   left(arg_min(csv_line, column_idx), {MAX_RECORD_CHARS}) AS record
            FROM {rejects} GROUP BY line"""
    )
    bad_rows = con.execute(
        f"""INSERT INTO staged BY NAME SELECT {quote_literal(str(export.path))} AS source_file, line AS source_line,
            {order} + line AS _order, reason AS reject_reason, record FROM bad_{rows}"""
    ).fetchone()[0]
    names = [r[0] for r in con.execute(f"DESCRIBE {rows}").fetchall() if r[0] != "_csv_record"]
    as_json = "{" + ", ".join(f"{quote_literal(n)}: r.{quote_identifier(n)}" for n in names) + "}"
    # a data record's line is its number + 1 (header), + the rejected records before it (DuckDB counts records)
    line = f"r._csv_record + 1 + (SELECT count(*) FROM bad_{rows} b WHERE b.line - 1 - b.rank < r._csv_record)"
    relation = f"(SELECT r.*, {line} AS _csv_line, CAST(to_json({as_json}) AS VARCHAR) AS {RECORD_COLUMN} FROM {rows} r)"
    good_rows = staging.insert(relation, quote_literal(str(export.path)), "src._csv_line", f"{order} + src._csv_line")
    for table in (rows, f"bad_{rows}", rejects, scans):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return bool(good_rows + bad_rows)


def stage_exports(staging: Staging, path: str | Path) -> dict[str, Any]:
    """Read every audit file at `path` into `staging`; return the counts (raises `InputError` if none)."""
    files = [_describe_file(i, p) for i, p in enumerate(discover_exports(path))]
    tally = _FileTally(files=len(files), empty_files=sum(f.layout == "empty" for f in files))
    not_arrays = _stage_arrays(staging, [f for f in files if f.layout == "array"], tally)
    _stage_lines(staging, [f for f in files if f.layout == "lines"] + not_arrays, tally)
    for export in (f for f in files if f.layout == "csv"):
        tally.empty_files += not _stage_csv(staging, export)
    counts = {"files": tally.files, "empty_files": tally.empty_files, **staging.finish(), "blank_lines": tally.blank_lines}
    if tally.unparsed_arrays:
        counts["not_json_arrays"] = tally.unparsed_arrays
    if counts["records_read"] == 0:
        raise InputError(f"no audit events in {path}: {tally.files} file(s), all empty")
    return counts


def read_exports(path: str | Path) -> ReadResult:
    """Read GitHub audit-log exports at `path` (file, folder or glob) into normalized events in memory."""
    with Staging() as staging:
        counts = stage_exports(staging, path)
        return ReadResult(staging.events_table(), staging.rejected_table(), counts)


def read_exports_to(
    path: str | Path,
    events_path: str | Path,
    rejected_path: str | Path | None = None,
    work_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Stream exports at `path` into `events_path` (Parquet) and `rejected_path` (NDJSON); return counts.

    Nothing passes through Python rows; scratch data lives in `work_dir` (default: next to
    `events_path`, so it spills to the same disk) and outputs are replaced atomically.
    """
    scratch = Path(work_dir) if work_dir is not None else Path(events_path).parent
    scratch.mkdir(parents=True, exist_ok=True)
    with Staging(scratch) as staging:
        counts = stage_exports(staging, path)
        staging.write_events(events_path)
        if rejected_path is not None:
            staging.write_rejected(rejected_path)
    return counts


def _write_arrow(table: pa.Table, path: str | Path, options: str) -> None:
    with duckdb.connect() as con:
        con.register("arrow_table", table)
        copy_atomically(con, "SELECT * FROM arrow_table", path, options)


def write_events(events: pa.Table, path: str | Path) -> None:
    """Write an events table (`EVENT_SCHEMA`) as Parquet, atomically."""
    _write_arrow(events.cast(EVENT_SCHEMA), path, PARQUET_OPTIONS)


def write_rejected(rejected: pa.Table, path: str | Path) -> None:
    """Write rejected records (`REJECTED_SCHEMA`) as NDJSON, one JSON object per line, atomically."""
    _write_arrow(rejected.cast(REJECTED_SCHEMA), path, NDJSON_OPTIONS)
