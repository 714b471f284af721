"""Time `base_features` (the kql/ functions on DuckDB through duckdb-kql) on N synthetic events.

Events are generated with numpy straight into an EVENT_SCHEMA Parquet file (in 1M-row chunks) over
181 days, then base features are computed for all 181 days. Prints generation time, feature time,
events/s and the process's peak RSS.
Run: `.venv/bin/python benchmarks/bench_kql.py [--events 2000000] [--actors 2000] [--keep FILE]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from github_ueba.config import FeaturesConfig
from github_ueba.events import EVENT_SCHEMA
from github_ueba.features.base import base_features

DAYS = 181
END = dt.date(2026, 6, 30)
CHUNK = 1_000_000

#: (action, weight): mostly git and pull-request traffic, a tail of rare admin actions.
ACTIONS = [
    ("git.fetch", 40.0), ("git.clone", 12.0), ("git.push", 15.0), ("pull_request.create", 6.0),
    ("pull_request.merge", 4.0), ("pull_request_review.submit", 6.0), ("repo.download_zip", 1.0),
    ("workflows.completed_workflow_run", 10.0), ("issue_comment.update", 3.0), ("team.add_member", 0.2),
    ("repo.create", 0.2), ("org.add_member", 0.05), ("org.remove_member", 0.02), ("hook.create", 0.05),
    ("public_key.create", 0.05), ("protected_branch.destroy", 0.01), ("repo.access", 0.02),
    ("repository_secret_scanning.disable", 0.005), ("dependabot_alerts.disable", 0.005),
    ("org.disable_two_factor_requirement", 0.001), ("repo.transfer", 0.002),
]


def _strings(codes: np.ndarray, vocabulary: list[str]) -> pa.Array:
    """A string column from integer codes, built in Arrow's C++ (no Python loop over rows)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), pa.array(vocabulary)).cast(pa.string())


def _chunk(rng: np.random.Generator, size: int, n_actors: int, n_repos: int) -> pa.Table:
    """One chunk of events: each actor has a home hour, home repos, two IPs and mostly one country."""
    actor = rng.zipf(1.3, size) % n_actors
    first_day = dt.datetime.combine(END - dt.timedelta(days=DAYS - 1), dt.time(), dt.timezone.utc)
    start_ms = int(first_day.timestamp() * 1000)
    day = rng.integers(0, DAYS, size)
    home_hour = (8 + (actor * 7919) % 10).astype(np.float64)
    hour = np.clip(np.rint(rng.normal(home_hour, 2.0)), 0, 23).astype(np.int64)
    ms_in_hour = rng.integers(0, 3_600_000, size)
    timestamp = start_ms + day * 86_400_000 + hour * 3_600_000 + ms_in_hour
    names, weights = zip(*ACTIONS)
    p = np.asarray(weights) / np.sum(weights)
    action = rng.choice(len(names), size, p=p)
    stray = (rng.random(size) < 0.02) * rng.integers(0, n_repos, size)  # 2% of events on any repo
    repo = (actor * 31 + rng.integers(0, 8, size) + stray) % n_repos
    ip = actor * 2 + (rng.random(size) < 0.1)
    country = np.where(rng.random(size) < 0.995, actor % 5, rng.integers(0, 40, size))
    user = rng.integers(0, n_actors, size)
    visibility = rng.integers(0, 3, size)
    actor_names = [f"user{i:05d}" for i in range(n_actors)]
    ip_names = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(2 * n_actors + 2)]
    columns = {
        "timestamp": pa.array(timestamp, type=pa.int64()),
        "document_id": pa.nulls(size, pa.string()),
        "action": _strings(action, list(names)),
        "actor": _strings(actor, actor_names),
        "actor_id": pa.nulls(size, pa.string()),
        "actor_ip": _strings(ip, ip_names),
        "country_code": _strings(country, [f"C{i:02d}" for i in range(40)]),
        "org": _strings(np.zeros(size, dtype=np.int64), ["acme"]),
        "repo": _strings(repo, [f"acme/repo{i:04d}" for i in range(n_repos)]),
        "user": _strings(user, actor_names),
        "operation_type": pa.nulls(size, pa.string()),
        "transport_protocol_name": pa.nulls(size, pa.string()),
        "programmatic_access_type": pa.nulls(size, pa.string()),
        "user_agent": pa.nulls(size, pa.string()),
        "business": pa.nulls(size, pa.string()),
        "visibility": _strings(visibility, ["private", "internal", "public"]),
        "permission": pa.nulls(size, pa.string()),
        "source_file": _strings(np.zeros(size, dtype=np.int64), ["bench"]),
        "source_line": pa.array(np.arange(size, dtype=np.int64)),
    }
    return pa.table(columns, schema=EVENT_SCHEMA)


def generate(path: Path, n_events: int, n_actors: int, n_repos: int, seed: int = 0) -> None:
    """Write `n_events` synthetic events to `path` in EVENT_SCHEMA, CHUNK rows at a time."""
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, EVENT_SCHEMA) as writer:
        for offset in range(0, n_events, CHUNK):
            writer.write_table(_chunk(rng, min(CHUNK, n_events - offset), n_actors, n_repos))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Generate events, time base_features over 181 days, print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--actors", type=int, default=2_000)
    parser.add_argument("--repos", type=int, default=1_000)
    parser.add_argument("--keep", type=Path, help="write the events here instead of a temporary file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "events.parquet"
        started = time.perf_counter()
        generate(path, args.events, args.actors, args.repos)
        generated = time.perf_counter() - started
        rss_after_generation = peak_rss_mb()
        start = END - dt.timedelta(days=DAYS - 1)
        started = time.perf_counter()
        base = base_features(path, start, END + dt.timedelta(days=1), start, FeaturesConfig())
        seconds = time.perf_counter() - started
        size_mb = path.stat().st_size / 1e6
        print(f"events:            {args.events:,} ({size_mb:.0f} MB Parquet, generated in {generated:.1f} s)")
        print(f"actor-days:        {len(base):,} ({base['actor'].nunique():,} actors, {DAYS} days)")
        print(f"base_features:     {seconds:.2f} s  ({args.events / seconds:,.0f} events/s)")
        print(f"peak RSS:          {peak_rss_mb():.0f} MB (after generation: {rss_after_generation:.0f} MB)")


if __name__ == "__main__":
    main()
