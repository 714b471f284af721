"""Read GitHub audit-log exports (`source=files`): NDJSON/JSONL, JSON arrays, gzip, and the web-UI CSV.

NDJSON takes two paths. The fast one: DuckDB's `read_json` (one row per non-blank line, NULLs for a bad
line) extracts the fields, and a numpy scan of the line breaks turns row numbers into file lines.
Every record the fast path cannot settle (rejected, or `action`/`actor` not looking like a string) is
re-read exactly: the lines are split in numpy, handed to DuckDB as raw bytes, validated and parsed one
by one (`json_records_sql`), so each rejected line keeps its file, 1-based line, text and precise
reason, and one bad line never fails a file. `normalize.py` maps the fields onto `EVENT_SCHEMA`.
"""

from __future__ import annotations

import glob
import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from github_ueba.errors import InputError
from github_ueba.events import EVENT_SCHEMA
from github_ueba.io import atomic_path
from github_ueba.sources.normalize import (
    GITHUB_FIELDS,
    MAX_RECORD_CHARS,
    NDJSON_OPTIONS,
    PARQUET_WRITER_OPTIONS,
    RECORD_COLUMN,
    REJECTED_SCHEMA,
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
#: Top-level keys the fast path reads: all as VARCHAR (objects become JSON text), but `actor_location`,
#: a struct (`read_json` gives a NULL country code where it is no object, instead of failing the row).
FAST_COLUMNS: dict[str, str] = {
    **{name: "VARCHAR" for name in GITHUB_FIELDS},
    "actor_location": "STRUCT(country_code VARCHAR)",
}
#: Column -> JSON paths the exact path extracts (first non-null wins); all other keys are ignored.
JSON_FIELD_PATHS: dict[str, tuple[str, ...]] = {
    **{name: (f'$."{name}"',) for name in FAST_COLUMNS if name != "actor_location"},
    "actor_location.country_code": ('$."actor_location"."country_code"', '$."actor_location.country_code"'),
}
#: The fields that must hold JSON strings; anything else (an object, a number) rejects the record.
STRING_ONLY_FIELDS: tuple[str, ...] = ("action", "actor")
#: Bytes read per chunk when splitting lines.
CHUNK_BYTES = 32 * 1024 * 1024
#: Largest top-level JSON value accepted in a file of concatenated arrays (`gh api --paginate` output).
MAX_JSON_VALUE_BYTES = 1024 * 1024 * 1024

ReadResult = NormalizeResult
_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
_ORDER_SHIFT = 40  # _order = file index << 40 | line: "first" means first file (sorted), then first line
_LINE_MASK = (1 << _ORDER_SHIFT) - 1
_SHORT_LINE = 16  # whitespace-only lines longer than this are not looked for (a count check catches them)
_SPARSE_SHARE = 0.05  # re-read marked lines in place when they are fewer than this share, else sequentially
_WINDOW_GAP = 64 * 1024  # marked lines closer than this are read in one go


@dataclass(frozen=True)
class ExportFile:
    """One input file: its position in the sorted input (decides which duplicate is first) and layout."""

    index: int
    path: Path
    layout: str  # "lines" (NDJSON), "array" (JSON array(s)), "csv", or "empty"
    compression: str  # "gzip" or "none"

    @property
    def order_base(self) -> int:
        """`_order` of line 0 of this file."""
        return self.index << _ORDER_SHIFT


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


def _open_binary(path: Path) -> BinaryIO:
    """The file's bytes, gunzipped when it starts with the gzip magic number (whatever its name)."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")


def describe_file(index: int, path: Path) -> ExportFile:
    """Sniff compression and layout: CSV by name; JSON starting with `[` is an array, else NDJSON lines."""
    try:
        with open(path, "rb") as probe:
            compression = "gzip" if probe.read(2) == _GZIP_MAGIC else "none"
        with _open_binary(path) as stream:
            head = stream.read(65536)
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: cannot read: {err}") from None
    if not head:
        layout = "empty"
    elif path.name.lower().endswith((".csv", ".csv.gz")):
        layout = "csv"
    elif head.removeprefix(_UTF8_BOM).lstrip().startswith(b"["):
        layout = "array"
    else:
        layout = "lines"
    return ExportFile(index, path, layout, compression)


# ------------------------------------------------------------------------------- splitting lines


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    """Fill `view` from `stream` (gzip streams return short reads); return the bytes read."""
    filled = 0
    while filled < len(view):
        n = stream.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


def _line_chunks(
    path: Path, chunk_bytes: int, fresh_buffers: bool
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Yield (data, offsets, base) per chunk of whole lines: line i is `data[offsets[i]:offsets[i+1]]` with
    its newline, and `data[0]` is byte `base` of the (uncompressed) file. A leading UTF-8 BOM is skipped;
    a last line without newline counts. With `fresh_buffers` every chunk gets its own memory (it may
    outlive the iteration, e.g. inside Arrow arrays)."""
    carry = np.empty(0, np.uint8)
    buf = np.empty(0, np.uint8)
    base = 0
    first = True
    with _open_binary(path) as stream:
        while True:
            size = carry.size + chunk_bytes
            if fresh_buffers or buf.size < size:
                buf = np.empty(size, np.uint8)
            buf[: carry.size] = carry
            filled = carry.size + _read_into(stream, memoryview(buf)[carry.size : size])
            at_end = filled < size
            data = buf[:filled]
            start = 3 if first and data[:3].tobytes() == _UTF8_BOM else 0
            first = False
            ends = np.flatnonzero(data[start:] == 10) + (start + 1)
            if at_end and filled > (ends[-1] if ends.size else start):
                ends = np.append(ends, filled)
            consumed = int(ends[-1]) if ends.size else start
            carry = data[consumed:].copy()
            if ends.size:
                yield data, np.concatenate(([start], ends)).astype(np.int64), base
            base += consumed
            if at_end:
                return


def _blank_mask(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """True for lines holding only JSON whitespace (checked for lines up to `_SHORT_LINE` bytes)."""
    starts, ends = offsets[:-1], offsets[1:]
    blank = np.zeros(starts.size, dtype=bool)
    short = np.flatnonzero(ends - starts <= _SHORT_LINE)
    if short.size:
        idx = starts[short, None] + np.arange(_SHORT_LINE)
        inside = idx < ends[short, None]
        byte = data[np.minimum(idx, data.size - 1)]
        space = (byte == 32) | (byte == 9) | (byte == 13) | (byte == 10)
        blank[short] = np.all(space | ~inside, axis=1)
    return blank


@dataclass(frozen=True)
class LineScan:
    """Line count, 1-based numbers of blank lines, and (uncompressed files) every line's byte bounds."""

    lines: int
    blank: np.ndarray
    bounds: np.ndarray | None  # line i (1-based) is bytes bounds[i-1]:bounds[i]


def scan_lines(export: ExportFile, chunk_bytes: int = CHUNK_BYTES) -> LineScan:
    """Count lines, find blank ones, and keep line bounds of an uncompressed file (one pass, one buffer)."""
    lines, blanks, bounds = 0, [], []
    try:
        for data, offsets, base in _line_chunks(export.path, chunk_bytes, fresh_buffers=False):
            blanks.append(np.flatnonzero(_blank_mask(data, offsets)) + lines + 1)
            bounds.append(offsets[1:] + base if bounds else offsets + base)
            lines += offsets.size - 1
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{export.path}: cannot read: {err}") from None
    keep_bounds = export.compression == "none" and bool(bounds)
    return LineScan(
        lines,
        np.concatenate(blanks) if blanks else np.empty(0, np.int64),
        np.concatenate(bounds) if keep_bounds else None,
    )


def _take_lines(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Copy the byte ranges `starts[i]:ends[i]` of `data` next to each other; return (bytes, offsets)."""
    lengths = ends - starts
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    return np.asarray(data[np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])]), offsets


def _gathered_lines(path: Path, bounds: np.ndarray, wanted: np.ndarray, chunk_bytes: int) -> Iterator[tuple]:
    """Yield (data, offsets, line numbers) for the `wanted` lines of an uncompressed file, read in place.

    Lines close together (gap < 64 KiB) are read as one window with `os.pread`: one call per window,
    not per line. (A memory map would do, but the kernel maps whole page-cache folios around each line
    and the process looks gigabytes bigger.)
    """
    starts, ends = bounds[wanted - 1], bounds[wanted]
    far = starts[1:] - ends[:-1] > _WINDOW_GAP
    next_chunk = starts[1:] // chunk_bytes != starts[:-1] // chunk_bytes
    first = np.flatnonzero(np.concatenate(([True], far | next_chunk)))  # the first line of each window
    opens = np.zeros(starts.size, dtype=bool)
    opens[first] = True
    window = np.cumsum(opens) - 1
    w_start, w_end = starts[first], np.maximum.reduceat(ends, first)
    w_offset = np.concatenate(([0], np.cumsum(w_end - w_start)))
    batch = w_offset[:-1] // chunk_bytes
    fd = os.open(path, os.O_RDONLY)
    try:
        for b in np.unique(batch):
            in_batch = np.flatnonzero(batch == b)
            data = np.frombuffer(
                b"".join(os.pread(fd, int(w_end[w] - w_start[w]), int(w_start[w])) for w in in_batch), np.uint8
            )
            lines = np.flatnonzero(np.isin(window, in_batch))
            shift = w_offset[window[lines]] - w_offset[in_batch[0]] - w_start[window[lines]]
            yield *_take_lines(data, starts[lines] + shift, ends[lines] + shift), wanted[lines]
    finally:
        os.close(fd)


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
    """Arrow batches of raw NDJSON lines (bytes + 1-based line number) from files, split with numpy.

    `wanted` (file index -> sorted line numbers) keeps only those lines; with the file's line `bounds`
    (from `scan_lines`) they are read in place instead of re-reading the file. A read error (truncated
    gzip, unreadable file) is kept in `error`, naming the file, and ends the stream.
    """

    def __init__(
        self,
        files: list[ExportFile],
        wanted: dict[int, np.ndarray] | None = None,
        bounds: dict[int, np.ndarray] | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.files = files
        self.wanted = wanted
        self.bounds = bounds or {}
        self.chunk_bytes = chunk_bytes
        self.blank_lines = 0
        self.records_per_file: dict[int, int] = {}
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

    def _file_lines(self, export: ExportFile) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(data, offsets, line numbers) of the lines to hand on."""
        wanted = None if self.wanted is None else self.wanted.get(export.index, np.empty(0, np.int64))
        bounds = self.bounds.get(export.index)
        if wanted is not None and bounds is not None and wanted.size < _SPARSE_SHARE * (bounds.size - 1):
            yield from _gathered_lines(export.path, bounds, wanted, self.chunk_bytes)
            return
        lines_done = 0
        for data, offsets, _ in _line_chunks(export.path, self.chunk_bytes, fresh_buffers=True):
            numbers = np.arange(lines_done + 1, lines_done + offsets.size, dtype=np.int64)
            lines_done += offsets.size - 1
            if wanted is None:
                yield data, offsets, numbers
                continue
            keep = np.flatnonzero(np.isin(numbers, wanted))
            if keep.size:
                yield *_take_lines(data, offsets[keep], offsets[keep + 1]), numbers[keep]

    def _file_batches(self, export: ExportFile) -> Iterator[pa.RecordBatch]:
        dictionary = pa.array([str(export.path)], pa.string())
        self.records_per_file[export.index] = 0
        for data, offsets, numbers in self._file_lines(export):
            n = numbers.size
            raw = pa.LargeBinaryArray.from_buffers(
                pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
            )
            blank = _blank_mask(data, offsets)
            self.blank_lines += int(blank.sum())
            self.records_per_file[export.index] += int(n - blank.sum())
            yield pa.RecordBatch.from_arrays(
                [
                    pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), dictionary),
                    pa.array(np.full(n, export.index, np.int32)),
                    pa.array(numbers),
                    raw,
                    pa.array(blank),
                ],
                schema=_LINE_BATCH_SCHEMA,
            )


# ---------------------------------------------------------------------------- exact JSON parsing


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


def _looks_unlike_string(value: str) -> str:
    """SQL: true where an extracted value may have been a JSON object, array, number or boolean."""
    return (
        f"({value} IS NOT NULL AND (left({value}, 1) IN ('{{', '[') OR {value} IN ('true', 'false') "
        f"OR TRY_CAST({value} AS DOUBLE) IS NOT NULL))"
    )


def json_records_sql(text_relation: str) -> str:
    """A SELECT extracting GitHub fields from JSON text, one record per row, with a reject reason.

    `text_relation` has `_source_file`, `_file_idx`, `_line`, `_text` (NULL when not UTF-8) and `_record`.
    Every output field is VARCHAR (see `JSON_COLUMNS`). `json_valid` guards the extraction, so malformed
    JSON is a reason, not a failed query (`try()` would parse once less, but falls back to row-at-a-time
    execution for every vector holding a bad line); `json_extract_string` on a list of paths parses once.
    `json_type` runs only on values that do not look like strings.
    """
    path_list, positions = _json_path_list()
    fields = []
    for column, idx in positions.items():
        values = [f"_v[{i}]" for i in idx]
        value = values[0] if len(values) == 1 else f"coalesce({', '.join(values)})"
        fields.append(f"{value} AS {quote_identifier(column)}")
    type_checks = " ".join(
        f"WHEN {_looks_unlike_string(f'_v[{positions[name][0]}]')} "
        f"AND json_type(_text, {quote_literal(JSON_FIELD_PATHS[name][0])}) <> 'VARCHAR' "
        f"THEN '{name} is not a string'"
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
_ORDER_SQL = f"(CAST(_file_idx AS BIGINT) << {_ORDER_SHIFT}) + _line"


def _stage_json_text(staging: Staging, text_relation: str) -> int:
    relation = f"({json_records_sql(text_relation)})"
    return staging.insert(relation, "_source_file", "_line", _ORDER_SQL, JSON_COLUMNS)


def _stage_lines_exactly(
    staging: Staging,
    files: list[ExportFile],
    wanted: dict[int, np.ndarray] | None = None,
    bounds: dict[int, np.ndarray] | None = None,
) -> LineBatches:
    """Stream NDJSON lines (all, or the `wanted` ones) through the exact path; a read error names the file."""
    batches = LineBatches(files, wanted, bounds)
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
    return batches


# ------------------------------------------------------------------------------- fast NDJSON path

_FAST_REDO_SQL = (
    f"reject_reason IS NOT NULL OR {_looks_unlike_string('action')} OR {_looks_unlike_string('actor')}"
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
        staging.delete_orders(export.order_base, export.order_base + _LINE_MASK + 1)
        return None
    return scan


def _redo_exactly(staging: Staging, files: dict[int, ExportFile], scans: dict[int, LineScan]) -> None:
    """Re-read the rows the fast path marked, line by line, on the exact path (in place where possible)."""
    orders = staging.pop_redo()
    if not orders.size:
        return
    file_idx, lines = orders >> _ORDER_SHIFT, orders & _LINE_MASK
    wanted = {int(i): lines[file_idx == i] for i in np.unique(file_idx)}
    bounds = {i: scans[i].bounds for i in wanted if scans[i].bounds is not None}
    _stage_lines_exactly(staging, [files[i] for i in sorted(wanted)], wanted, bounds)


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
        batches = _stage_lines_exactly(staging, exact)
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
                tally.empty_files += _stage_json_text(staging, _array_text_sql(export, concatenated)) == 0
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
    with duckdb.connect() as con:
        con.register("rejected_records", rejected.cast(REJECTED_SCHEMA))
        copy_atomically(con, "SELECT * FROM rejected_records", path, NDJSON_OPTIONS)
