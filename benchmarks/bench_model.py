"""Train and score the detector on 1M actor-days, and compare feature sets on planted attacks.

Run: `.venv/bin/python benchmarks/bench_model.py`. Part 1 prints seconds for behaviour features,
fit, scoring and reasons on about 1M synthetic actor-days. Part 2 plants five kinds of attack
actor-days into a small synthetic enterprise (3 seeds) and prints each one's rank among the
~700 actor-days of the scored window (0 = ranked first) under the `full`, `wide` and `paper`
feature sets.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from bench_behaviour import RARE, synthetic_base

from github_ueba.config import FeaturesConfig
from github_ueba.explain import reasons
from github_ueba.feature_sets import columns_for
from github_ueba.features.behaviour import behaviour_features
from github_ueba.model import ActorDayDetector, training_rows

SETTINGS = FeaturesConfig(baseline_days=30, min_history_days=5)

#: Attack actor-days planted into the last days of the window (column -> value).
PLANTS: dict[str, dict[str, int]] = {
    "mass_clone": {"git_clone": 200, "events": 230},
    "new_country_secret_scanning_off": {"first_seen_countries": 1, "unique_countries": 2,
                                        "secret_scanning_disabled": 1, "events": 20},
    "new_repo_downloads": {"repo_download": 50, "new_repo_downloads": 30, "new_repos": 30,
                           "first_seen_repos": 30, "unique_repos": 32, "events": 90},
    "protection_removed": {"protection_changes": 3, "org_security_weakened": 1, "events": 15},
    "off_hours_burst": {"off_hours_events": 40, "events": 60},
}


def timing() -> None:
    """Seconds for features, fit, scoring and reasons on ~1M actor-days."""
    base = synthetic_base(7_000, 180, activity=0.8)
    started = time.perf_counter()
    table = behaviour_features(base, SETTINGS)
    features_s = time.perf_counter() - started
    detect_start = table["day"].max() - pd.Timedelta(days=29)
    rows = training_rows(table, detect_start, SETTINGS.min_history_days, train_on_bots=False)
    detector = ActorDayDetector(feature_columns=columns_for("full"), n_estimators=300, n_jobs=2)
    started = time.perf_counter()
    detector.fit(rows)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    scores = detector.anomaly_score(table)
    score_s = time.perf_counter() - started
    top = table.assign(anomaly_score=scores).nlargest(100, "anomaly_score")
    started = time.perf_counter()
    reasons(detector, top)
    reasons_s = time.perf_counter() - started
    n_features = len(columns_for("full"))
    print(f"{len(table):,} actor-days ({len(rows):,} training rows, {n_features} features, 300 trees, n_jobs=2): "
          f"behaviour features {features_s:.1f} s, fit {fit_s:.1f} s, score all {score_s:.1f} s "
          f"({len(table) / score_s:,.0f} rows/s), reasons for the top 100 {reasons_s:.2f} s")


def planted(seed: int) -> tuple[pd.DataFrame, pd.Timestamp, dict[str, tuple[str, pd.Timestamp]]]:
    """A small enterprise with one actor-day of each PLANTS kind in its last days."""
    base = synthetic_base(60, 90, activity=0.8, seed=seed, rare=0.003)
    last = base["day"].max()
    quiet = {f: 0 for f in RARE | {"first_seen_ips", "first_seen_repos", "first_seen_actions"}}
    where, rows = {}, []
    for k, (name, values) in enumerate(PLANTS.items()):
        actor, day = f"user{k:05d}", last - pd.Timedelta(days=k)
        base = base.loc[~((base["actor"] == actor) & (base["day"] == day))]
        rows.append(base.loc[base["actor"] == actor].iloc[[0]].assign(**quiet).assign(day=day, **values))
        where[name] = (actor, day)
    table = behaviour_features(pd.concat([base, *rows], ignore_index=True), SETTINGS)
    return table, last - pd.Timedelta(days=14), where


def quality() -> None:
    """Rank of each planted attack under each feature set (mean over 3 seeds; 0 = first)."""
    ranks: dict[str, list[dict[str, int]]] = {}
    for seed in range(3):
        table, detect_start, where = planted(seed)
        rows = training_rows(table, detect_start, SETTINGS.min_history_days, train_on_bots=False)
        window = table.loc[table["day"] >= detect_start].reset_index(drop=True)
        for feature_set in ("full", "wide", "paper"):
            detector = ActorDayDetector(feature_columns=columns_for(feature_set), n_estimators=300,
                                        log_transform=feature_set != "paper", random_state=seed).fit(rows)
            score = detector.anomaly_score(window)
            ranks.setdefault(feature_set, []).append(
                {name: int((score > score[((window["actor"] == a) & (window["day"] == d)).to_numpy()][0]).sum())
                 for name, (a, d) in where.items()}
            )
    print(f"rank of planted attacks among {len(window)} scored actor-days (mean of 3 seeds, 0 = first):")
    for feature_set, per_seed in ranks.items():
        mean = pd.DataFrame(per_seed).mean()
        cells = "  ".join(f"{name} {value:.0f}" for name, value in mean.items())
        print(f"  {feature_set:<5} {cells}  | mean {mean.mean():.1f}")


if __name__ == "__main__":
    timing()
    quality()
