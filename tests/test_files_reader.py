"""The export reader and the normalizer on GitHub's real sample events and on broken input."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from github_ueba.errors import InputError
from github_ueba.events import EVENT_SCHEMA
from github_ueba.sources.files import read_exports, read_exports_to, write_events, write_rejected
from github_ueba.sources.normalize import REJECTED_SCHEMA, normalize_arrow

SAMPLES = Path("/work/shared/samples/github-audit")
SAMPLE_FILES = sorted(SAMPLES.glob("*.ndjson"))
ORG_FILE = SAMPLES / "elastic-integrations-github-organisation-audit.ndjson"
PANTHER_FILE = SAMPLES / "panther-analysis-github-rules-tests.ndjson"
API_FILE = SAMPLES / "elastic-integrations-github-api-request-events.ndjson"

GOOD = {"@timestamp": 1700000000000, "action": "git.clone", "actor": "mona", "repo": "acme/app"}


def ms(*args: int) -> int:
    """Epoch ms of a UTC datetime."""
    return int(dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp() * 1000)


def ndjson(path: Path, records: list, opener=open) -> Path:
    """Write records (dicts as JSON, strings as they are) one per line."""
    with opener(path, "wt") as out:
        for record in records:
            out.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


def event(result, **match) -> dict:
    """The one event whose columns equal `match`."""
    rows = [r for r in result.events.to_pylist() if all(r[k] == v for k, v in match.items())]
    assert len(rows) == 1, rows
    return rows[0]


def rejected(result) -> list[dict]:
    """The rejected records as dicts, in input order."""
    return result.rejected.to_pylist()


def reasons(result) -> list[tuple[int, str]]:
    """(line, reason) of each rejected record, in input order."""
    return [(r["source_line"], r["reason"]) for r in rejected(result)]


# --------------------------------------------------------------------------------- real samples


@pytest.fixture(scope="module")
def samples():
    """Each sample file read alone, plus the whole folder."""
    return {path: read_exports(path) for path in SAMPLE_FILES} | {SAMPLES: read_exports(SAMPLES)}


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_every_sample_line_is_accepted_rejected_or_a_duplicate(samples, path):
    result = samples[path]
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    counts = result.counts
    assert counts["accepted"] + counts["rejected"] + counts["duplicates"] == len(lines) == counts["records_read"]
    assert result.events.num_rows == counts["accepted"]
    assert result.rejected.num_rows == counts["rejected"] == sum(counts["rejected_by_reason"].values())
    assert result.events.schema == EVENT_SCHEMA and result.rejected.schema == REJECTED_SCHEMA
    assert set(result.events["source_file"].to_pylist()) == {str(path)}


def test_old_rest_shape_takes_created_at(samples):
    first = json.loads(ORG_FILE.read_text().splitlines()[0])
    assert "@timestamp" not in first and "_document_id" not in first
    row = event(samples[ORG_FILE], source_line=1)
    assert row["timestamp"] == first["created_at"] == 1583364251067
    assert (row["action"], row["actor"], row["org"], row["document_id"]) == (
        "organization_default_label.create", "github-actor", "Example-Org", None,
    )


def test_panther_string_timestamps_parse_as_utc(samples):
    result = samples[PANTHER_FILE]
    assert event(result, source_line=2)["timestamp"] == ms(2023, 1, 31, 18, 58, 27, 638000)
    nanos = [i + 1 for i, line in enumerate(PANTHER_FILE.read_text().splitlines()) if "19.605000000" in line]
    assert nanos, "the sample holds nanosecond strings"
    accepted_lines = set(result.events["source_line"].to_pylist())
    assert accepted_lines & set(nanos)
    for line in set(nanos) & accepted_lines:
        assert event(result, source_line=line)["timestamp"] == ms(2025, 10, 15, 18, 41, 19, 605000)


def test_nested_country_code_and_numeric_actor_id(samples):
    row = event(samples[API_FILE], source_line=1)
    assert (row["country_code"], row["actor_id"], row["document_id"]) == ("IN", "11111", "Zt3XoecTsz6kAS-87bAEzQ")
    assert row["timestamp"] == 1741611465102


def test_clone_without_actor_is_rejected_naming_actor(samples):
    lines = ORG_FILE.read_text().splitlines()
    no_actor = [i + 1 for i, line in enumerate(lines) if "git.clone" in line and '"actor"' not in line]
    assert no_actor
    by_line = {r["source_line"]: r for r in rejected(samples[ORG_FILE])}
    for line in no_actor:
        assert "actor" in by_line[line]["reason"]
        assert by_line[line]["source_file"] == str(ORG_FILE)
        assert json.loads(by_line[line]["record"]) == json.loads(lines[line - 1])


def test_panther_repeated_document_ids_are_duplicates(samples):
    result = samples[PANTHER_FILE]
    lines = PANTHER_FILE.read_text().splitlines()
    exact_repeats = [line for line, n in Counter(lines).items() if n > 1 and '"_document_id"' in line]
    assert exact_repeats, "the Panther sample repeats whole events"
    rejected_lines = {r["source_line"] for r in rejected(result)}
    ids_per_line = {i + 1: json.loads(line).get("_document_id") for i, line in enumerate(lines)}
    kept = Counter(doc for line, doc in ids_per_line.items() if doc and line not in rejected_lines)
    assert result.counts["duplicates"] == sum(n - 1 for n in kept.values()) > 0
    events_per_id = Counter(d for d in result.events["document_id"].to_pylist() if d)
    assert max(events_per_id.values()) == 1
    for line in exact_repeats:
        assert events_per_id[json.loads(line)["_document_id"]] == 1


def test_fast_and_exact_paths_agree_on_samples(samples):
    exact = read_exports(SAMPLES, exact_only=True)
    fast = samples[SAMPLES]
    assert exact.counts == fast.counts
    keys = [("source_file", "ascending"), ("source_line", "ascending")]
    assert fast.events.sort_by(keys).equals(exact.events.sort_by(keys))
    assert fast.rejected.equals(exact.rejected)


# ---------------------------------------------------------------------------------- bad input


def test_malformed_line_is_rejected_with_file_and_line(tmp_path):
    path = ndjson(tmp_path / "audit.ndjson", [GOOD, '{"action": "git.push", "actor": ', {**GOOD, "actor": "lisa"}])
    result = read_exports(path)
    assert [r["actor"] for r in sorted(result.events.to_pylist(), key=lambda r: r["source_line"])] == ["mona", "lisa"]
    assert rejected(result) == [
        {
            "source_file": str(path),
            "source_line": 2,
            "reason": "malformed JSON",
            "record": '{"action": "git.push", "actor": ',
        }
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"action": None}, "missing action"),
        ({"action": ""}, "missing action"),
        ({"action": {"name": "git.clone"}}, "action is not a string"),
        ({"actor": 42}, "actor is not a string"),
        ({"actor": None}, "missing actor"),
        ({"@timestamp": True}, "unparseable timestamp in @timestamp"),
        ({"@timestamp": {"ms": 1}}, "unparseable timestamp in @timestamp"),
        ({"@timestamp": "yesterday"}, "unparseable timestamp in @timestamp"),
        ({"@timestamp": None}, "missing timestamp (@timestamp, created_at, timestamp, at_sign_timestamp)"),
        ({"@timestamp": 9e15}, "timestamp out of range in @timestamp"),
    ],
)
def test_bad_record_is_rejected_with_reason(tmp_path, change, reason):
    bad = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = ndjson(tmp_path / "audit.jsonl", [GOOD, bad, GOOD | {"actor": "lisa"}])
    result = read_exports(path)
    assert reasons(result) == [(2, reason)]
    assert json.loads(rejected(result)[0]["record"]) == bad
    assert result.counts["rejected_by_reason"] == {reason: 1} and result.counts["accepted"] == 2


def test_numeric_looking_login_is_a_string(tmp_path):
    result = read_exports(ndjson(tmp_path / "a.ndjson", [{**GOOD, "actor": "1234"}, {**GOOD, "actor": "true"}]))
    assert sorted(result.events["actor"].to_pylist()) == ["1234", "true"] and result.counts["rejected"] == 0


def test_blank_lines_crlf_bom_and_bad_utf8_keep_line_numbers(tmp_path):
    path = tmp_path / "audit.ndjson"
    lines = [json.dumps(GOOD).encode(), b"", b"   ", b"{broken", json.dumps({**GOOD, "actor": "lisa"}).encode(),
             b'{"action": "x", "actor": "\xff"}', b"", json.dumps({**GOOD, "actor": "kim"}).encode()]
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")
    result = read_exports(path)
    assert {r["actor"]: r["source_line"] for r in result.events.to_pylist()} == {"mona": 1, "lisa": 5, "kim": 8}
    assert reasons(result) == [(4, "malformed JSON"), (6, "invalid UTF-8")]
    assert result.counts["blank_lines"] == 3 and result.counts["records_read"] == 5
    assert "exact_path_files" not in result.counts  # the fast path mapped rows to lines past the blanks


def test_fast_path_falls_back_to_exact_when_rows_and_lines_disagree(tmp_path):
    path = tmp_path / "audit.ndjson"  # read_json skips a long whitespace-only line the line scan does not flag
    path.write_text(json.dumps(GOOD) + "\n" + " " * 40 + "\n" + json.dumps({**GOOD, "actor": "kim"}) + "\n")
    result = read_exports(path)
    assert result.counts["exact_path_files"] == [str(path)]
    assert event(result, actor="kim")["source_line"] == 3
    assert reasons(result) == [(2, "malformed JSON")]


def test_timestamp_formats(tmp_path):
    stamps = {
        "ms": (1700000000123, 1700000000123),
        "ms float": (1700000000123.0, 1700000000123),
        "seconds": (1700000000, 1700000000000),
        "seconds float": (1700000000.5, 1700000000500),
        "ms string": ("1700000000123", 1700000000123),
        "iso z": ("2023-11-14T22:13:20.123Z", 1700000000123),
        "iso offset": ("2023-11-15T00:13:20+02:00", 1700000000000),
        "panther": ("2023-11-14 22:13:20.123", 1700000000123),
        "panther ns": ("2023-11-14 22:13:20.123000000", 1700000000123),
    }
    records = [{"action": "a", "actor": name, "created_at": value} for name, (value, _) in stamps.items()]
    result = read_exports(ndjson(tmp_path / "t.ndjson", records))
    assert {r["actor"]: r["timestamp"] for r in result.events.to_pylist()} == {k: v for k, (_, v) in stamps.items()}


def test_timestamp_precedence_and_repository_fallback(tmp_path):
    record = {"action": "a", "actor": "b", "@timestamp": 1700000000001, "created_at": 5, "repository": "o/r"}
    panther = {"action": "a", "actor": "c", "at_sign_timestamp": "2023-11-14 22:13:20", "repository": "o/x",
               "repo": "o/y"}
    result = read_exports(ndjson(tmp_path / "t.ndjson", [record, panther]))
    assert event(result, actor="b")["timestamp"] == 1700000000001 and event(result, actor="b")["repo"] == "o/r"
    assert event(result, actor="c")["timestamp"] == 1700000000000 and event(result, actor="c")["repo"] == "o/y"


def test_empty_file_is_counted_but_all_empty_is_an_error(tmp_path):
    (tmp_path / "empty.ndjson").write_bytes(b"")
    ndjson(tmp_path / "audit.ndjson", [GOOD])
    result = read_exports(tmp_path)
    assert (result.counts["files"], result.counts["empty_files"], result.counts["accepted"]) == (2, 1, 1)
    (tmp_path / "audit.ndjson").write_text("\n\n")
    with pytest.raises(InputError, match="no audit events in .*2 file"):
        read_exports(tmp_path)


def test_folder_without_audit_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=str(tmp_path)):
        read_exports(tmp_path)


def test_missing_path_and_empty_glob(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        read_exports(tmp_path / "nope.ndjson")
    with pytest.raises(InputError, match="match this pattern"):
        read_exports(tmp_path / "*.ndjson")


def test_json_array_file_and_concatenated_pages(tmp_path):
    page = [GOOD, {**GOOD, "actor": "lisa", "data": {"hook_id": 1}}, {**GOOD, "action": None}]
    array = tmp_path / "export.json"
    array.write_text(json.dumps(page, indent=2))
    result = read_exports(array)
    assert sorted(result.events["source_line"].to_pylist()) == [1, 2]
    assert reasons(result) == [(3, "missing action")]
    pages = tmp_path / "pages.json"  # `gh api --paginate` prints one array per page
    pages.write_text(json.dumps(page[:2]) + json.dumps([{**GOOD, "actor": "kim"}]) + "\n")
    result = read_exports(pages)
    assert {r["actor"]: r["source_line"] for r in result.events.to_pylist()} == {"mona": 1, "lisa": 2, "kim": 3}


def test_json_that_is_neither_array_nor_ndjson_rejects_every_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"action": "a", "actor": "b", "created_at": 1},\n  {"action": \n]\n')
    result = read_exports(path)
    assert result.counts["accepted"] == 0 and result.counts["not_json_arrays"] == [str(path)]
    assert [r["source_line"] for r in rejected(result)] == [1, 2, 3, 4]
    assert all(r["reason"] == "malformed JSON" for r in rejected(result))


def test_gzip_ndjson(tmp_path):
    path = ndjson(tmp_path / "stream.ndjson.gz", [GOOD, "{oops", {**GOOD, "actor": 7}], opener=gzip.open)
    result = read_exports(path)
    assert "exact_path_files" not in result.counts
    assert result.events["actor"].to_pylist() == ["mona"]
    assert reasons(result) == [(2, "malformed JSON"), (3, "actor is not a string")]


def test_truncated_gzip_names_the_file(tmp_path):
    path = ndjson(tmp_path / "stream.json.gz", [GOOD] * 2000, opener=gzip.open)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(InputError, match="stream.json.gz"):
        read_exports(path)


def test_web_ui_csv_export(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        "@timestamp,action,actor,actor_location.country_code,repo,data.events\n"
        '1700000000000,repo.create,mona,US,acme/app,"[""push"", ""pull_request""]"\n'
        "1700000000001,git.clone,lisa,DE,acme/app,,too,many\n"
        "1700000000002,git.push,kim,,acme/lib,\n"
        "1700000000003,,kim,FR,acme/lib,\n"
    )
    result = read_exports(path)
    rows = {r["actor"]: r for r in result.events.to_pylist()}
    mona = rows["mona"]
    assert (mona["country_code"], mona["timestamp"], mona["source_line"]) == ("US", 1700000000000, 2)
    assert (rows["kim"]["country_code"], rows["kim"]["source_line"]) == (None, 4)
    assert reasons(result) == [(3, "malformed CSV row: too many columns"), (5, "missing action")]
    assert json.loads(rejected(result)[1]["record"])["actor"] == "kim"


def test_glob_and_cross_file_duplicates(tmp_path):
    ndjson(tmp_path / "2025-01-01.ndjson", [{**GOOD, "_document_id": "d1"}, {**GOOD, "_document_id": "d2"}])
    ndjson(tmp_path / "2025-01-02.ndjson", [{**GOOD, "_document_id": "d1", "actor": "later"}])
    ndjson(tmp_path / "other.jsonl", [{**GOOD, "_document_id": "d3"}])
    result = read_exports(tmp_path / "2025-*.ndjson")
    assert result.counts["files"] == 2 and result.counts["duplicates"] == 1
    assert event(result, document_id="d1")["actor"] == "mona"
    assert sorted(result.events["document_id"].to_pylist()) == ["d1", "d2"]


def test_records_without_document_id_are_never_duplicates(tmp_path):
    old_shape = {"action": "repo.create", "actor": "mona", "created_at": 1583364251067}
    result = read_exports(ndjson(tmp_path / "rest.json", [old_shape, old_shape]))
    assert (result.counts["accepted"], result.counts["duplicates"]) == (2, 0)


def test_read_exports_to_writes_parquet_and_ndjson(tmp_path):
    source = ndjson(tmp_path / "audit.ndjson", [GOOD, "nope"])
    out = tmp_path / "out"
    counts = read_exports_to(source, out / "events.parquet", out / "rejected.ndjson")
    assert (counts["accepted"], counts["rejected"]) == (1, 1)
    assert pq.read_table(out / "events.parquet").schema.equals(EVENT_SCHEMA, check_metadata=False)
    assert [json.loads(x)["reason"] for x in (out / "rejected.ndjson").read_text().splitlines()] == ["malformed JSON"]
    assert sorted(p.name for p in out.iterdir()) == ["events.parquet", "rejected.ndjson"]


def test_normalize_arrow_takes_the_simulator_shape(tmp_path):
    table = pa.table(
        {
            "@timestamp": pa.array([1700000000000, 1700000000001, 1700000000002], pa.int64()),
            "created_at": pa.array([1700000000000, 1700000000001, 1700000000002], pa.int64()),
            "_document_id": ["a", "b", "a"],
            "action": ["git.clone", None, "git.clone"],
            "actor": ["mona", "lisa", "mona"],
            "actor_id": pa.array([1, 2, 1], pa.int64()),
            "actor_location": pa.array([{"country_code": "US"}, {"country_code": "DE"}, None]),
            "repo": ["acme/app", None, "acme/app"],
        }
    )
    result = normalize_arrow(table, "simulator")
    assert result.events.schema == EVENT_SCHEMA
    assert result.events.to_pylist()[0] == {
        **{name: None for name in EVENT_SCHEMA.names},
        "timestamp": 1700000000000, "document_id": "a", "action": "git.clone", "actor": "mona", "actor_id": "1",
        "country_code": "US", "repo": "acme/app", "source_file": "simulator", "source_line": 1,
    }
    assert reasons(result) == [(2, "missing action")]
    assert result.counts == {"records_read": 3, "accepted": 1, "rejected": 1,
                             "rejected_by_reason": {"missing action": 1}, "duplicates": 1}
    counts = normalize_arrow(table, "simulator", tmp_path / "e.parquet", tmp_path / "r.ndjson")
    assert counts == result.counts and pq.read_table(tmp_path / "e.parquet").num_rows == 1


def test_write_helpers_are_atomic_and_typed(tmp_path):
    result = read_exports(ndjson(tmp_path / "a.ndjson", [GOOD, "x"]))
    write_events(result.events, tmp_path / "out" / "events.parquet")
    write_rejected(result.rejected, tmp_path / "out" / "rejected.ndjson")
    assert pq.read_table(tmp_path / "out" / "events.parquet").to_pylist() == result.events.to_pylist()
    assert json.loads((tmp_path / "out" / "rejected.ndjson").read_text()) == rejected(result)[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["events.parquet", "rejected.ndjson"]


def test_normalize_arrow_reads_typed_columns():
    utc = dt.timezone.utc
    table = pa.table(
        {
            "@timestamp": pa.array([1700000000.5, None], pa.float64()),
            "timestamp": pa.array([None, dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=utc)], pa.timestamp("ms", "UTC")),
            "action": ["a", "b"],
            "actor": ["x", "y"],
            "actor_location": ['{"country_code": "SE"}', None],
            "country_code": [None, "NO"],
        }
    )
    rows = sorted(normalize_arrow(table, "t").events.to_pylist(), key=lambda r: r["source_line"])
    assert [(r["timestamp"], r["country_code"]) for r in rows] == [(1700000000500, "SE"), (1700000000000, "NO")]
    nested = pa.table({"created_at": [1, 2], "action": pa.array([{"name": "x"}, None]), "actor": ["x", "y"]})
    result = normalize_arrow(nested, "t")
    assert reasons(result) == [(1, "action is not a string"), (2, "missing action")]
    assert json.loads(rejected(result)[0]["record"])["action"] == {"name": "x"}


def test_failures_leave_no_output_or_scratch_behind(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "empty.ndjson").write_bytes(b"")
    with pytest.raises(InputError, match="no audit events"):
        read_exports_to(tmp_path / "empty.ndjson", out / "events.parquet", out / "rejected.ndjson")
    with pytest.raises(ValueError, match="field names"):
        write_events(pa.table({"not_an_event_column": [1]}), out / "events.parquet")
    assert list(out.iterdir()) == []
