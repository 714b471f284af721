"""End to end ingest: N GitHub audit events as NDJSON -> events.parquet -> base features (kql/ on DuckDB).

Usage: python benchmarks/bench_ingest.py [N=2000000] [--dir DIR] [--keep]
Target (DESIGN.md): 10,000,000 events in under 60 s and under 4 GB on 2 cores. The NDJSON comes
from bench_read.generate (10,000 actors, 2,000 repos, 180 days, ~0.1% malformed lines); the timed
part runs in a child process so its peak RSS is the pipeline's alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_read import generate  # noqa: E402


def ingest_child(ndjson: str, out_dir: str) -> None:
    """Read the exports and compute base features over the whole window; print one JSON line of timings."""
    from github_ueba.config import FeaturesConfig
    from github_ueba.features.base import base_features
    from github_ueba.sources.files import read_exports_to

    out = Path(out_dir)
    started = time.perf_counter()
    counts = read_exports_to(ndjson, out / "events.parquet", out / "rejected.ndjson")
    read_seconds = time.perf_counter() - started
    start, end = dt.date(2025, 1, 1), dt.date(2025, 6, 30)
    features = base_features(out / "events.parquet", start, end, start, FeaturesConfig())
    total = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"records": counts["records_read"], "accepted": counts["accepted"],
                      "read_s": round(read_seconds, 1), "features_s": round(total - read_seconds, 1),
                      "total_s": round(total, 1), "actor_days": len(features), "peak_rss_mb": round(peak_mb)}))


def main() -> None:
    """Generate, then time the child and print throughput against the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=2_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp folder)")
    parser.add_argument("--child", nargs=2, metavar=("NDJSON", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        ingest_child(*args.child)
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        ndjson = Path(tmp) / "audit.ndjson"
        began = time.perf_counter()
        generate(ndjson, args.n)
        print(f"generated {args.n:,} events ({ndjson.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - began:.1f} s")
        child = subprocess.run([sys.executable, __file__, "--child", str(ndjson), tmp], capture_output=True, text=True)
        if child.returncode != 0:
            sys.exit(f"ingest failed:\n{child.stderr[-3000:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        rate = result["records"] / result["total_s"]
        print(f"read+normalize {result['read_s']} s, kql base features {result['features_s']} s, "
              f"total {result['total_s']} s -> {rate:,.0f} events/s; {result['actor_days']:,} actor-days; "
              f"peak RSS {result['peak_rss_mb']:,} MB")
        per_10m = 10_000_000 / rate
        print(f"extrapolated to 10M events: {per_10m:.0f} s (target < 60 s)")


if __name__ == "__main__":
    main()
