"""Throughput of the export reader: N GitHub-shaped events as NDJSON -> events.parquet + rejected.ndjson.

Usage: python benchmarks/bench_read.py [N=1000000] [--dir DIR] [--keep] [--memory-limit 2GB]
Generates the NDJSON with numpy + DuckDB COPY (streaming/REST shape, ~0.1% malformed lines and ~0.1%
repeated `_document_id`s), then runs `read_exports_to` in a child process and prints events/s and the
child's peak RSS, so the generator's memory is not counted.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

ACTIONS = np.array(
    ["git.clone", "git.fetch", "git.push", "api.request", "repo.download_zip", "pull_request.merge",
     "repo.create", "repo.access", "org.update_member", "protected_branch.destroy", "workflows.created_workflow_run"]
)
ACTION_WEIGHTS = np.array([30, 25, 15, 15, 2, 5, 1, 1, 1, 0.5, 4.5])
COUNTRIES = np.array(["US", "DE", "IN", "GB", "FR", "BR", "JP", "CA"])
PROTOCOLS = np.array(["http", "ssh"])
ACCESS_TYPES = np.array(["Personal access token", "GitHub App server-to-server token", "OAuth access token"])
AGENTS = np.array(["git/2.43.0", "curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", "GitHub-Hookshot/1"])
START_MS = 1_735_689_600_000  # 2025-01-01
DAY_MS = 86_400_000


def _dict(indices: np.ndarray, values: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), pa.array(values.tolist()))


def _chunk(start: int, n: int, rng: np.random.Generator, n_actors: int, n_repos: int) -> pa.Table:
    """`n` events as an Arrow table in GitHub's field names (dictionary columns keep it cheap)."""
    ids = np.arange(start, start + n)
    ids[ids % 1009 == 0] -= 1  # every 1009th event repeats the previous document id
    actor = rng.integers(0, n_actors, n)
    ts = START_MS + rng.integers(0, 180 * DAY_MS, n)
    actors = np.array([f"dev-{i:05d}" for i in range(n_actors)])
    repos = np.array([f"acme/repo-{i:04d}" for i in range(n_repos)])
    ips = np.array([f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(n_actors)])
    return pa.table(
        {
            "@timestamp": pa.array(ts),
            "_document_id": pa.array(np.char.add("doc-", ids.astype(str))),
            "action": _dict(rng.choice(len(ACTIONS), n, p=ACTION_WEIGHTS / ACTION_WEIGHTS.sum()), ACTIONS),
            "actor": _dict(actor, actors),
            "actor_id": pa.array(actor + 1000),
            "actor_ip": _dict(actor, ips),
            "actor_location": pa.StructArray.from_arrays(
                [_dict(actor % len(COUNTRIES), COUNTRIES).cast(pa.string())], names=["country_code"]
            ),
            "business": pa.array(np.full(n, "acme")),
            "created_at": pa.array(ts),
            "hashed_token": pa.array(np.full(n, "E8Fzcgs3TQXqhrKKC/qNR+2XZnaK3ykQBSAt1kPMiJs=")),
            "operation_type": pa.array(np.full(n, "access")),
            "org": pa.array(np.full(n, "acme")),
            "programmatic_access_type": _dict(rng.integers(0, len(ACCESS_TYPES), n), ACCESS_TYPES),
            "repo": _dict(rng.integers(0, n_repos, n), repos),
            "repository_public": pa.array(rng.random(n) < 0.1),
            "token_id": pa.array(rng.integers(1, 10**7, n)),
            "transport_protocol_name": _dict(rng.integers(0, 2, n), PROTOCOLS),
            "user_agent": _dict(rng.integers(0, len(AGENTS), n), AGENTS),
        }
    )


def generate(path: Path, n: int, seed: int = 7, chunk: int = 2_000_000) -> None:
    """Write `n` events as NDJSON, in chunks; ~0.1% malformed lines, ~0.1% repeated ids."""
    rng = np.random.default_rng(seed)
    con = duckdb.connect()
    parts = []
    for part, start in enumerate(range(0, n, chunk)):
        table = _chunk(start, min(chunk, n - start), rng, n_actors=10_000, n_repos=2_000)
        con.register("chunk", table)
        part_path = path.with_name(f"{path.name}.part{part}")
        # about one line in 1000 is cut short (malformed JSON)
        con.execute(
            f"""COPY (SELECT CASE WHEN c.token_id % 1000 = 0 THEN left(CAST(to_json(c) AS VARCHAR), 40)
                             ELSE CAST(to_json(c) AS VARCHAR) END FROM chunk c)
                TO '{part_path}' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x01')"""
        )
        parts.append(part_path)
        con.unregister("chunk")
    with open(path, "wb") as out:
        for part_path in parts:
            with open(part_path, "rb") as src:
                shutil.copyfileobj(src, out, 64 * 1024 * 1024)
            part_path.unlink()


def read_child(path: str, out_dir: str, memory_limit: str) -> None:
    """Child process: run `read_exports_to`, print seconds, counts and peak RSS as JSON."""
    from github_ueba.sources.files import read_exports_to

    started = time.perf_counter()
    counts = read_exports_to(
        path, Path(out_dir) / "events.parquet", Path(out_dir) / "rejected.ndjson", memory_limit=memory_limit or None
    )
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": usage.ru_maxrss / 1024, "counts": counts}))


def main() -> None:
    """Generate, then time the reader in a child process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--memory-limit", default="", help="DuckDB memory_limit of the reader, e.g. 2GB")
    parser.add_argument("--child", nargs=3, metavar=("PATH", "OUT", "LIMIT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        read_child(*args.child)
        return
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-read-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"audit-{args.n}.ndjson"
    started = time.perf_counter()
    action = "reused"
    if not path.exists():
        generate(path, args.n)
        action = "generated"
    print(f"{action} {args.n:,} events, {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - started:.1f} s")
    child = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(work), args.memory_limit],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        sys.exit(child.stderr)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    counts, seconds = result["counts"], result["seconds"]
    print(f"read_exports_to: {seconds:.1f} s wall ({result['cpu_seconds']:.1f} s CPU), "
          f"{counts['records_read'] / seconds:,.0f} records/s, peak RSS {result['peak_rss_mb']:,.0f} MB")
    print(f"counts: accepted {counts['accepted']:,}, rejected {counts['rejected']:,} "
          f"{counts['rejected_by_reason']}, duplicates {counts['duplicates']:,}")
    if not args.keep and args.dir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
