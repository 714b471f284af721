"""Time behaviour_features on 1,000 and 10,000 actors × 180 days, and compare with a per-day loop.

The per-day loop is the paper's reference shape (for each day: take every earlier row, group by
actor, mean/std, z-score that day's rows); it is implemented here only, to measure the ratio.
Run: `.venv/bin/python benchmarks/bench_behaviour.py`.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from github_ueba.config import FeaturesConfig
from github_ueba.features.behaviour import COUNT_FEATURES, PAPER_COUNT_FEATURES, behaviour_features, paper_z_column

RARE = {"secret_scanning_disabled", "security_alerts_disabled", "org_security_weakened", "members_removed",
        "repo_exposure", "first_seen_countries", "protection_changes", "persistence"}

#: Events per unit of an actor's daily activity level; RARE features use `rare` instead.
RATES = {
    "git_clone": 1.5, "git_fetch": 3.0, "git_push": 1.0, "repo_download": 0.3, "unique_repos": 1.2,
    "unique_ips": 0.3, "unique_countries": 0.05, "unique_actions": 1.5, "new_repos": 0.1, "new_repo_clones": 0.1,
    "new_repo_pushes": 0.05, "new_repo_downloads": 0.03, "off_hours_events": 0.2, "first_seen_ips": 0.05,
    "first_seen_repos": 0.1, "first_seen_actions": 0.05, "access_granted": 0.02, "repo_create": 0.02,
}


def synthetic_base(
    n_actors: int, n_days: int, activity: float = 0.7, seed: int = 0, rare: float = 0.001
) -> pd.DataFrame:
    """A base-feature table of the kql/ contract's shape: busy and quiet actors, correlated counts, gaps."""
    rng = np.random.default_rng(seed)
    actor = np.repeat(np.arange(n_actors), n_days)
    day = np.tile(np.arange(n_days), n_actors)
    keep = rng.random(actor.size) < activity
    actor, day = actor[keep], day[keep]
    frame = pd.DataFrame(
        {
            "actor": pd.Categorical.from_codes(actor, [f"user{i:05d}" for i in range(n_actors)]).astype(str),
            "day": pd.Timestamp("2026-01-01") + pd.to_timedelta(day, unit="D"),
        }
    )
    level = rng.gamma(4.0, 0.5, size=n_actors)[actor] * rng.gamma(5.0, 0.2, size=actor.size)
    for feature in COUNT_FEATURES:
        frame[feature] = rng.poisson(level * RATES.get(feature, rare if feature in RARE else 0.0)).astype(np.int64)
    for feature in ("unique_repos", "unique_ips", "unique_countries", "unique_actions"):
        frame[feature] += 1
    volume = frame[["git_clone", "git_fetch", "git_push", "repo_download"]].sum(axis=1)
    frame["events"] = volume + rng.poisson(3 * level) + 1
    frame["is_weekend"] = (frame["day"].dt.day_of_week >= 5).astype(np.int64)
    frame["is_leaver"] = np.int64(0)
    frame["days_to_removal"] = np.int64(-1)
    frame["is_bot"] = False
    return frame


def per_day_loop(base: pd.DataFrame) -> pd.DataFrame:
    """The paper's shape: each day recomputes mean/std over all earlier rows, then z-scores that day."""
    parts = []
    for day in np.sort(base["day"].unique()):
        history = base.loc[base["day"] < day]
        today = base.loc[base["day"] == day, ["actor", "day", *PAPER_COUNT_FEATURES]]
        stats = history.groupby("actor")[list(PAPER_COUNT_FEATURES)].agg(["mean", "std"]).fillna(0.0)
        stats.columns = [f"{f}__{stat}" for f, stat in stats.columns]
        joined = today.join(stats, on="actor")
        for f in PAPER_COUNT_FEATURES:
            mean, std = joined[f"{f}__mean"].to_numpy(), joined[f"{f}__std"].to_numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(std > 0, (today[f].to_numpy() - mean) / std, 0.0)
            today = today.assign(**{paper_z_column(f): np.maximum(np.nan_to_num(z), 0.0)})
        parts.append(today)
    return pd.concat(parts)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    """Seconds of one call, and its result."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def main() -> None:
    """Print the timings."""
    settings = FeaturesConfig(baseline_days=60)
    for n_actors in (1_000, 10_000):
        base = synthetic_base(n_actors, 180, activity=1.0)
        behaviour_features(base.iloc[:1000], settings)
        seconds, out = timed(behaviour_features, base, settings)
        memory = out.memory_usage(deep=False).sum() / 2**20
        print(f"behaviour_features {n_actors:>6} actors x 180 days ({len(base):,} rows, "
              f"{out.shape[1]} columns, {memory:,.0f} MiB out): {seconds:.2f} s")
        del out
        shuffled = base.sample(frac=1.0, random_state=1)
        seconds, _ = timed(behaviour_features, shuffled, settings)
        print(f"behaviour_features {n_actors:>6} actors x 180 days, rows in random order: {seconds:.2f} s")

    base = synthetic_base(1_000, 90)
    ours, out = timed(behaviour_features, base, settings)
    naive, loop = timed(per_day_loop, base)
    merged = out.merge(loop, on=["actor", "day"], suffixes=("", "_loop"))
    worst = max(
        float(np.abs(merged[paper_z_column(f)] - merged[paper_z_column(f) + "_loop"]).max())
        for f in PAPER_COUNT_FEATURES
    )
    print(f"1,000 actors x 90 days ({len(base):,} rows): behaviour_features {ours:.2f} s (all features), "
          f"per-day loop {naive:.2f} s (paper z only), ratio {naive / ours:.0f}x; "
          f"max |paper_z difference| {worst:.2e}")


if __name__ == "__main__":
    main()
