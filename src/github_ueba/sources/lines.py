"""NDJSON lines for the export reader: split with numpy, numbered from 1, blank ones found, and read exactly.

The exact path hands raw lines to DuckDB, which validates and parses them one by one (`json_records_sql`).
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
import pyarrow as pa

from github_ueba.errors import InputError
from github_ueba.sources.normalize import (
    GITHUB_FIELDS,
    RECORD_COLUMN,
    UPSTREAM_REASON_COLUMN,
    Staging,
    quote_identifier,
    quote_literal,
)

#: Column -> JSON paths the exact path extracts (first non-null wins); all other keys are ignored.
JSON_FIELD_PATHS: dict[str, tuple[str, ...]] = {
    **{name: (f'$."{name}"',) for name in GITHUB_FIELDS if name != "actor_location"},
    "actor_location.country_code": ('$."actor_location"."country_code"', '$."actor_location.country_code"'),
}
#: The fields that must hold JSON strings; anything else (an object, a number) rejects the record.
STRING_ONLY_FIELDS: tuple[str, ...] = ("action", "actor")
#: Bytes read per chunk when splitting lines.
CHUNK_BYTES = 32 * 1024 * 1024
#: First bytes of a gzip stream (sniffed, whatever the file's name), and of a UTF-8 byte-order mark.
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
ORDER_SHIFT = 40  # _order = file index << 40 | line: "first" means first file (sorted), then first line
LINE_MASK = (1 << ORDER_SHIFT) - 1
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
        return self.index << ORDER_SHIFT


def open_binary(path: Path) -> BinaryIO:
    """The file's bytes, gunzipped when it starts with the gzip magic number (whatever its name)."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


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
    with open_binary(path) as stream:
        while True:
            size = carry.size + chunk_bytes
            if fresh_buffers or buf.size < size:
                buf = np.empty(size, np.uint8)
            buf[: carry.size] = carry
            filled = carry.size + _read_into(stream, memoryview(buf)[carry.size : size])
            at_end = filled < size
            data = buf[:filled]
            start = 3 if first and data[:3].tobytes() == UTF8_BOM else 0
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


def looks_unlike_string(value: str) -> str:
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
        f"WHEN {looks_unlike_string(f'_v[{positions[name][0]}]')} "
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
_ORDER_SQL = f"(CAST(_file_idx AS BIGINT) << {ORDER_SHIFT}) + _line"


def stage_json_text(staging: Staging, text_relation: str) -> int:
    """Stage the records of `text_relation` (see `json_records_sql`) in file-then-line order; return the rows."""
    relation = f"({json_records_sql(text_relation)})"
    return staging.insert(relation, "_source_file", "_line", _ORDER_SQL, JSON_COLUMNS)


def stage_lines_exactly(
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
        stage_json_text(staging, text)
    except duckdb.Error as err:
        if batches.error is not None:
            raise batches.error from None
        raise InputError(f"{', '.join(str(f.path) for f in files[:3])}: cannot read NDJSON: {err}") from None
    finally:
        staging.con.unregister("ndjson_lines")
    return batches
