"""Behaviour features: every value equals a plain per-row loop; novelty never reads as z = 0."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from github_ueba.config import FeaturesConfig
from github_ueba.features.behaviour import (
    COUNT_FEATURES,
    PAPER_COUNT_FEATURES,
    REQUIRED_COLUMNS,
    Z_GROUPS,
    BehaviourFeatureError,
    behaviour_features,
)

RARE = {"secret_scanning_disabled", "security_alerts_disabled", "org_security_weakened", "members_removed",
        "repo_exposure", "first_seen_countries", "protection_changes", "persistence"}

#: Events per unit of an actor's daily activity level; RARE features use `rare` instead.
RATES = {
    "git_clone": 1.5, "git_fetch": 3.0, "git_push": 1.0, "repo_download": 0.3, "unique_repos": 1.2,
    "unique_ips": 0.3, "unique_countries": 0.05, "unique_actions": 1.5, "new_repos": 0.1, "new_repo_clones": 0.1,
    "new_repo_pushes": 0.05, "new_repo_downloads": 0.03, "off_hours_events": 0.2, "first_seen_ips": 0.05,
    "first_seen_repos": 0.1, "first_seen_actions": 0.05, "access_granted": 0.02, "repo_create": 0.02,
}


def make_base(
    n_actors: int = 6, n_days: int = 40, seed: int = 0, activity: float = 0.6, n_bots: int = 1,
    start: str = "2026-01-05", rare: float = 0.003,
) -> pd.DataFrame:
    """A random base-feature table of the kql/ contract's shape: busy and quiet actors, gaps, rare events."""
    rng = np.random.default_rng(seed)
    actors = [f"user{i}" for i in range(n_actors - n_bots)] + [f"build{i}[bot]" for i in range(n_bots)]
    days = pd.date_range(start, periods=n_days, freq="D")
    grid = pd.MultiIndex.from_product([actors, days], names=["actor", "day"]).to_frame(index=False)
    grid = grid.loc[rng.random(len(grid)) < activity].reset_index(drop=True)
    level = rng.gamma(4.0, 0.5, size=n_actors)[grid["actor"].map({a: i for i, a in enumerate(actors)}).to_numpy()]
    level = level * rng.gamma(5.0, 0.2, size=len(grid))
    for feature in COUNT_FEATURES:
        grid[feature] = rng.poisson(level * RATES.get(feature, rare if feature in RARE else 0.0)).astype(np.int64)
    for feature in ("unique_repos", "unique_ips", "unique_countries", "unique_actions"):
        grid[feature] += 1
    grid["events"] = grid[["git_clone", "git_fetch", "git_push", "repo_download"]].sum(axis=1) + rng.poisson(
        3 * level
    ) + 1
    grid["is_weekend"] = (grid["day"].dt.day_of_week >= 5).astype(np.int64)
    grid["is_leaver"] = np.int64(0)
    grid["days_to_removal"] = np.int64(-1)
    grid["is_bot"] = grid["actor"].str.endswith("[bot]")
    return grid.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _stats(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values) if values else math.nan
    std = statistics.stdev(values) if len(values) >= 2 else math.nan
    return mean, std


def reference(base: pd.DataFrame, settings: FeaturesConfig, baseline: str) -> pd.DataFrame:
    """The obviously-correct version: one row at a time, dictionaries of days."""
    b = settings.baseline_days
    one = pd.Timedelta(days=1)
    by_actor = {a: g.set_index("day") for a, g in base.groupby("actor")}
    out = []
    for _, row in base.iterrows():
        d, own = row["day"], by_actor[row["actor"]]
        first = own.index.min()
        in_window = own.loc[(own.index >= d - b * one) & (own.index < d)]
        peers = base.loc[(base["day"] >= d - b * one) & (base["day"] < d) & ~base["is_bot"]]
        calendar_days = [d - k * one for k in range(1, b + 1) if d - k * one >= first]
        earlier = own.loc[own.index < d]
        result = {"history_days": len(in_window), "baseline_span_days": len(calendar_days)}
        novel = 0
        for f in COUNT_FEATURES:
            if baseline == "calendar":
                values = [float(own.at[day, f]) if day in own.index else 0.0 for day in calendar_days]
            else:
                values = [float(v) for v in in_window[f]]
            result["baseline_span_days"] = len(values)
            mean, std = _stats(values)
            peer_mean, peer_std = _stats([float(v) for v in peers[f]])
            centre = mean if values else (peer_mean if len(peers) else 0.0)
            if not math.isnan(std) and std > 0:
                scale = std
            elif len(peers):
                scale = max(0.0 if math.isnan(peer_std) else peer_std, math.sqrt(1 / len(peers)))
            else:
                scale = 1.0
            z = (row[f] - centre) / scale
            result[f"{f}_mean"], result[f"{f}_std"] = mean, std
            result[f"{f}_z"] = max(z, 0.0) if settings.clip_negative_z else z
            group = next(g for g, members in Z_GROUPS.items() if f in members)
            result[f"{group}_max_z"] = max(result.get(f"{group}_max_z", -math.inf), result[f"{f}_z"])
            result["max_z"] = max(result.get("max_z", -math.inf), result[f"{f}_z"])
            novel += int(row[f] > 0 and len(values) > 0 and sum(values) == 0)
        for f in PAPER_COUNT_FEATURES:
            mean, std = _stats([float(v) for v in earlier[f]])
            z = (row[f] - mean) / std if not math.isnan(std) and std > 0 else 0.0
            result[f"paper_z_{f}"] = max(z, 0.0)
        result["novel_features"] = novel
        previous = earlier.index.max() if len(earlier) else None
        result["days_since_last_active"] = b if previous is None else min((d - previous).days, b)
        result["has_baseline"] = len(in_window) >= settings.min_history_days
        out.append(result)
    return pd.DataFrame(out, index=base.index)


@pytest.mark.parametrize(
    "baseline_days, clip, baseline",
    [(7, True, "calendar"), (60, False, "calendar"), (10, True, "active"), (60, False, "active")],
)
def test_matches_plain_loop(baseline_days, clip, baseline):
    base = make_base(n_actors=5, n_days=40, seed=baseline_days, activity=0.55)
    settings = FeaturesConfig(baseline_days=baseline_days, min_history_days=5, clip_negative_z=clip)
    got = behaviour_features(base, settings, baseline=baseline)
    want = reference(base, settings, baseline)
    assert list(got.index) == list(base.index)
    pd.testing.assert_frame_equal(got[base.columns], base)
    for column in want.columns:
        np.testing.assert_allclose(
            got[column].to_numpy(dtype=float), want[column].to_numpy(dtype=float),
            rtol=2e-5, atol=2e-5, equal_nan=True, err_msg=column,
        )


def _two_actor_table(history_clones: int, today_clones: int, peer_clones: int) -> pd.DataFrame:
    days = pd.date_range("2026-03-01", periods=21, freq="D")
    rows = []
    for i, day in enumerate(days):
        clones = today_clones if i == 20 else history_clones
        rows.append({"actor": "alice", "day": day, "git_clone": clones})
        rows.append({"actor": "bob", "day": day, "git_clone": peer_clones * (i % 2)})
    frame = pd.DataFrame(rows)
    for f in REQUIRED_COLUMNS:
        if f not in frame:
            frame[f] = np.int64(0) if f != "events" else np.int64(1)
    frame["is_bot"] = False
    return frame


def test_first_time_action_is_not_z_zero():
    settings = FeaturesConfig(baseline_days=30, min_history_days=5)
    out = behaviour_features(_two_actor_table(0, 5, peer_clones=2), settings)
    today = out.loc[(out["actor"] == "alice") & (out["day"] == out["day"].max())].iloc[0]
    assert today["git_clone_std"] == 0 and today["git_clone_mean"] == 0
    peer_std = statistics.stdev([0] * 20 + [0, 2] * 10)  # alice and bob, 20 days each
    assert today["git_clone_z"] == pytest.approx(5 / peer_std, rel=1e-5)
    assert today["max_z"] == today["volume_max_z"] == today["git_clone_z"]
    assert today["novel_features"] == 1
    lonely = behaviour_features(_two_actor_table(0, 5, peer_clones=0), settings)
    today = lonely.loc[(lonely["actor"] == "alice") & (lonely["day"] == lonely["day"].max())].iloc[0]
    assert today["git_clone_z"] == pytest.approx(5 * math.sqrt(40), rel=1e-5)  # nobody among 40 peer rows


def test_history_flags_and_gaps():
    base = _two_actor_table(3, 3, peer_clones=1)
    base = base.loc[~((base["actor"] == "alice") & base["day"].between("2026-03-05", "2026-03-14"))]
    out = behaviour_features(base, FeaturesConfig(baseline_days=30, min_history_days=5))
    alice = out.loc[out["actor"] == "alice"].sort_values("day")
    back = alice.loc[alice["day"] == pd.Timestamp("2026-03-15")].iloc[0]
    assert back["days_since_last_active"] == 11
    assert back["history_days"] == 4 and not back["has_baseline"]
    assert back["baseline_span_days"] == 14
    assert back["git_clone_mean"] == pytest.approx(12 / 14)
    assert alice["days_since_last_active"].iloc[0] == 30
    assert alice["has_baseline"].iloc[-1]


def test_recomputing_replaces_the_columns():
    base = make_base(n_actors=3, n_days=12)
    once = behaviour_features(base, FeaturesConfig(baseline_days=5))
    twice = behaviour_features(once, FeaturesConfig(baseline_days=5))
    pd.testing.assert_frame_equal(once, twice)


def test_bad_input_is_named():
    base = make_base(n_actors=3, n_days=5)
    with pytest.raises(BehaviourFeatureError, match="git_push"):
        behaviour_features(base.drop(columns="git_push"), FeaturesConfig())
    with pytest.raises(BehaviourFeatureError, match="duplicate"):
        behaviour_features(pd.concat([base, base.iloc[:1]]), FeaturesConfig())
    with pytest.raises(BehaviourFeatureError, match="midnight"):
        behaviour_features(base.assign(day=base["day"] + pd.Timedelta(hours=3)), FeaturesConfig())
    with pytest.raises(BehaviourFeatureError, match="baseline"):
        behaviour_features(base, FeaturesConfig(), baseline="weekly")


def test_empty_table_gets_all_columns():
    base = make_base(n_actors=2, n_days=3).iloc[:0]
    out = behaviour_features(base, FeaturesConfig())
    full = behaviour_features(make_base(n_actors=2, n_days=3), FeaturesConfig())
    assert list(out.columns) == list(full.columns) and out.empty
    assert (out.dtypes == full.dtypes).all()


def test_recent_first_seen_repos_matches_a_loop():
    """Sustained novelty: repos first accessed over the last N calendar days, today included."""
    from github_ueba.features.behaviour import recent_first_seen_repos

    base = make_base(n_actors=5, n_days=30, seed=4, activity=0.5)
    base["first_seen_repos"] = np.random.default_rng(4).poisson(1.0, len(base))
    got = recent_first_seen_repos(base, 7)
    expected = [
        int(base.loc[(base["actor"] == row.actor) & (base["day"] <= row.day)
                     & (base["day"] > row.day - pd.Timedelta(days=7)), "first_seen_repos"].sum())
        for row in base.itertuples()
    ]
    assert got.tolist() == expected
    assert recent_first_seen_repos(base.iloc[:0], 7).tolist() == []


def test_recent_first_seen_repos_is_derived_when_missing():
    base = make_base(n_actors=3, n_days=10).drop(columns=["recent_first_seen_repos"])
    out = behaviour_features(base, FeaturesConfig(sustained_days=3))
    assert "recent_first_seen_repos" in out and "recent_first_seen_repos_z" in out
