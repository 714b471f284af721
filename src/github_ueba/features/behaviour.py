"""Per-actor behaviour features: each actor-day compared with that actor's own trailing past.

For a row of actor `a` on day `d` the baseline is the window of calendar days `[d - B, d - 1]`
(`B = features.baseline_days`), cut at the actor's first active day in the table, so the row's own
day never counts. Definitions, per count feature `f` in `COUNT_FEATURES`:

- `baseline_span_days` = n = calendar days in that window on or after the actor's first active day
  (`min(B, d - first_day)`). Days without a row inside the span count as ZERO activity: an actor
  who clones 3 times a week has a usual daily clone count of about 0.4, not 3. With
  `baseline="active"` the baseline is over the actor's active days in the window only (the paper's
  way) and n = `history_days`.
- `f_mean`, `f_std`: mean and sample standard deviation (ddof=1) of `f` over the n baseline days;
  NaN when n < 1 (mean) or n < 2 (std).
- `f_z` = (f - centre) / scale. Centre is `f_mean`; scale is `f_std` when it is > 0. A zero or
  undefined own std must not read as "nothing unusual" (an action the actor never did before), so
  then the scale is the PEER baseline: the sample std of `f` over all N non-bot actors' rows
  (active actor-days) in the same window `[d - B, d - 1]`, floored at sqrt(1/N), the spread one
  single event among those N rows would give (so an action nobody did in the window reads as
  about sqrt(N) standard deviations per event, not as 0 or 1); when the actor has no baseline day
  at all the centre is the peer mean too. With no peer rows at all (the table's first day) the
  centre is 0 and the scale 1. Negative z is clipped to 0 when `features.clip_negative_z` (the
  paper's choice).
- `max_z` and `<group>_max_z` for each group in `Z_GROUPS`: the largest `f_z` of the row (of the
  group), so one extreme count is one strong feature for the forest instead of one of dozens
  (IsolationForest picks split features uniformly; the paper's code has a "composite max" option).
- `history_days`: the actor's active days in the window; `has_baseline`: history_days >=
  `features.min_history_days`; `days_since_last_active`: days since the actor's previous active
  day, capped at B (B also on the actor's first day in the table).
- `novel_features`: how many count features are > 0 today but were 0 on every baseline day
  (0 when n = 0: nothing to compare with).
- `paper_z_<f>` for `f` in `PAPER_COUNT_FEATURES`: the paper's reference z-scores: mean and sample
  std over the actor's ACTIVE days before `d` since the first day of the table (expanding, no
  trailing limit), z = 0 when that std is 0 or undefined or the actor has no earlier row, negative z
  clipped to 0 (the paper always clips).

Everything is vectorized: rows are sorted by (actor, day), windows are found with one
`searchsorted` on an (actor, day) key, and window sums are differences of cumulative sums; the
count features are spread over a few threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from github_ueba.config import FeaturesConfig
from github_ueba.errors import InputError
from github_ueba.features.base import BASE_FEATURE_COLUMNS, RISK_GROUP_COLUMNS

#: Base columns that are not z-scored (flags and the leaver countdown).
FLAG_FEATURES: tuple[str, ...] = ("is_weekend", "is_leaver", "days_to_removal")

#: Context counts of kql/ActorDayFeatures.kql, deliberately not z-scored: peer-corroborated novelty, and
#: deploy-key use (read by bot marking).
SHARED_FEATURES: tuple[str, ...] = (
    "shared_new_repos", "shared_new_repo_clones", "shared_first_seen_repos", "deploy_key_events",
)

#: Count features that get a per-actor mean, std and z-score: every base count of kql/ but the above.
#: Derived counts added before the z-scores when the input lacks them: sustained novelty, so an
#: actor who reaches a few new repos every day (each day unremarkable alone) adds up to one signal.
SUSTAINED_FEATURES: tuple[str, ...] = ("recent_first_seen_repos",)

COUNT_FEATURES: tuple[str, ...] = (
    *(c for c in BASE_FEATURE_COLUMNS if c not in ("actor", "day", *FLAG_FEATURES, *SHARED_FEATURES)),
    *SUSTAINED_FEATURES,
)

#: Count features grouped by what an unusual value means; each group gets a `<group>_max_z`.
Z_GROUPS: dict[str, tuple[str, ...]] = {
    "volume": ("events", "git_clone", "git_fetch", "git_push", "repo_download", "unique_repos", "unique_actions"),
    "access": ("unique_ips", "unique_countries", "first_seen_ips", "first_seen_countries", "off_hours_events"),
    "novelty": (
        "new_repos",
        "new_repo_clones",
        "new_repo_pushes",
        "new_repo_downloads",
        "first_seen_repos",
        "recent_first_seen_repos",
        "first_seen_actions",
        "repo_create",
    ),
    "security": RISK_GROUP_COLUMNS,
}

#: Every column the base-feature table must have (the sustained counts are derived when missing).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "actor", "day", *(c for c in COUNT_FEATURES if c not in SUSTAINED_FEATURES), *FLAG_FEATURES
)

#: The counts the paper z-scores (its feature list), computed its way into `paper_z_<f>`.
PAPER_COUNT_FEATURES: tuple[str, ...] = (
    "git_clone",
    "git_push",
    "repo_download",
    "protection_changes",
    "unique_ips",
    "unique_repos",
    "new_repos",
    "new_repo_clones",
    "new_repo_pushes",
    "new_repo_downloads",
    "off_hours_events",
)

#: Columns added once per row (not per feature).
HISTORY_COLUMNS: tuple[str, ...] = (  # in this order, after max_z and the paper_z columns
    "history_days",
    "baseline_span_days",
    "days_since_last_active",
    "has_baseline",
    "novel_features",
)

BASELINES = ("calendar", "active")

_INT64_SAFE = 2**62
#: Count features are computed in this many threads (numpy releases the GIL in the heavy steps).
_THREADS = max(1, min(4, os.cpu_count() or 1))


class BehaviourFeatureError(InputError, ValueError):
    """The base-feature table cannot be turned into behaviour features (missing or bad columns)."""


def mean_column(feature: str) -> str:
    """Name of the baseline-mean column of `feature`."""
    return f"{feature}_mean"


def std_column(feature: str) -> str:
    """Name of the baseline-std column of `feature`."""
    return f"{feature}_std"


def z_column(feature: str) -> str:
    """Name of the z-score column of `feature`."""
    return f"{feature}_z"


def group_z_column(group: str) -> str:
    """Name of the largest z-score among the count features of `group` (a key of Z_GROUPS)."""
    return f"{group}_max_z"


def paper_z_column(feature: str) -> str:
    """Name of the paper-style z-score column of `feature`."""
    return f"paper_z_{feature}"


@dataclass(frozen=True)
class _Layout:
    """Rows sorted by (actor, day) and the baseline window bounds of each sorted row."""

    order: np.ndarray  # sorted position -> original position
    day: np.ndarray  # day index (0 = the table's first day) per sorted row
    window_start: np.ndarray  # first sorted row of the same actor inside [d - B, d - 1]
    actor_start: np.ndarray  # first sorted row of the same actor
    span_days: np.ndarray  # calendar days in the baseline window since the actor's first day
    n_days: int  # days from the table's first to last day


def _check_input(base: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in base.columns]
    if missing:
        raise BehaviourFeatureError(
            f"base features: missing columns {missing} (expected the output of kql/ActorDayFeatures.kql)"
        )
    if not pd.api.types.is_datetime64_any_dtype(base["day"]):
        raise BehaviourFeatureError(f"base features: column 'day' has dtype {base['day'].dtype}, expected datetime64")
    if getattr(base["day"].dt, "tz", None) is not None:
        raise BehaviourFeatureError("base features: column 'day' must be tz-naive UTC midnight, got a tz-aware column")
    if base["day"].isna().any() or base["actor"].isna().any():
        raise BehaviourFeatureError("base features: null values in 'actor' or 'day'")
    off_midnight = int((base["day"] != base["day"].dt.normalize()).sum())
    if off_midnight:
        raise BehaviourFeatureError(f"base features: {off_midnight} 'day' values are not UTC midnight")
    for feature in (f for f in COUNT_FEATURES if f in base.columns):
        column = base[feature]
        if column.isna().any() or not pd.api.types.is_numeric_dtype(column):
            raise BehaviourFeatureError(f"base features: column '{feature}' must hold non-null integer counts")
        if (column.to_numpy() < 0).any():
            raise BehaviourFeatureError(f"base features: column '{feature}' has negative counts")


def _layout(base: pd.DataFrame, baseline_days: int) -> _Layout:
    actor_code, _ = pd.factorize(base["actor"], sort=False)
    day_number = base["day"].to_numpy().astype("datetime64[D]").astype(np.int64)
    first_day = int(day_number.min())
    day_index = day_number - first_day
    n_days = int(day_index.max()) + 1
    order = np.lexsort((day_index, actor_code))
    actor_sorted = actor_code[order]
    day_sorted = day_index[order]
    same_actor = actor_sorted[1:] == actor_sorted[:-1]
    duplicates = same_actor & (day_sorted[1:] == day_sorted[:-1])
    if duplicates.any():
        position = order[1:][duplicates][0]
        row = base.iloc[position]
        raise BehaviourFeatureError(
            f"base features: {int(duplicates.sum())} duplicate (actor, day) rows, e.g. {row['actor']!r} on "
            f"{row['day']:%Y-%m-%d}"
        )
    stride = n_days + baseline_days + 1
    key = actor_sorted.astype(np.int64) * stride + day_sorted + baseline_days + 1
    window_start = np.searchsorted(key, key - baseline_days, side="left")
    rows = np.arange(len(key))
    is_first = np.concatenate(([True], ~same_actor))
    actor_start = np.maximum.accumulate(np.where(is_first, rows, 0))
    first_active = day_sorted[actor_start]
    span_days = np.minimum(baseline_days, day_sorted - first_active)
    return _Layout(order, day_sorted, window_start, actor_start, span_days, n_days)


def _cumulative(values: np.ndarray) -> np.ndarray:
    """Exclusive prefix sums: out[i] = sum of values[:i] (length n + 1)."""
    out = np.empty(len(values) + 1, dtype=values.dtype)
    out[0] = 0
    np.cumsum(values, out=out[1:])
    return out


@dataclass(frozen=True)
class _Denominators:
    """Per-row baseline sizes and the reciprocals the moments need (NaN where undefined)."""

    n: np.ndarray
    inv_n: np.ndarray  # 1 / n, NaN where n < 1
    inv_pairs: np.ndarray  # 1 / (n (n - 1)), NaN where n < 2

    @classmethod
    def of(cls, n: np.ndarray) -> "_Denominators":
        """Reciprocals of `n` for means and sample variances."""
        n_float = n.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_n = np.where(n >= 1, 1.0 / n_float, np.nan)
            inv_pairs = np.where(n >= 2, 1.0 / (n_float * (n_float - 1.0)), np.nan)
        return cls(n.astype(np.int64), inv_n, inv_pairs)


def _moments(s1: np.ndarray, s2: np.ndarray, den: _Denominators) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std (ddof=1) from the sum and sum of squares over n values."""
    mean = s1 * den.inv_n
    exact = (
        s1.dtype == np.int64
        and len(s1) > 0
        and int(den.n.max()) * int(s2.max()) < _INT64_SAFE
        and int(s1.max()) ** 2 < _INT64_SAFE
    )
    if exact:
        numerator = (den.n * s2 - s1 * s1).astype(np.float64)
    else:
        numerator = den.n * s2.astype(np.float64) - s1.astype(np.float64) ** 2
    return mean, np.sqrt(np.maximum(numerator, 0.0) * den.inv_pairs)


def _peer_baseline(
    values: np.ndarray, day: np.ndarray, human: np.ndarray, n_days: int, baseline_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per day d, over non-bot rows in days [d - B, d - 1]: the fallback centre and scale of the z-score."""
    weights = human.astype(np.float64)
    weighted = weights * values
    days = np.arange(n_days)
    lower = np.maximum(days - baseline_days, 0)
    sums = []
    for per_day in (
        np.bincount(day, weights=weights, minlength=n_days),
        np.bincount(day, weights=weighted, minlength=n_days),
        np.bincount(day, weights=weighted * values, minlength=n_days),
    ):
        cumulative = _cumulative(per_day)
        sums.append(cumulative[days] - cumulative[lower])
    count = np.rint(sums[0]).astype(np.int64)
    mean, std = _moments(sums[1], sums[2], _Denominators.of(count))
    centre = np.where(count >= 1, mean, 0.0)
    with np.errstate(divide="ignore"):
        one_event = np.where(count >= 1, np.sqrt(1.0 / np.maximum(count, 1)), 1.0)
    scale = np.maximum(np.nan_to_num(std, nan=0.0), one_event)
    return centre, scale


def _count_dtype(values: np.ndarray) -> type:
    """int64 while every prefix sum of squares stays exact, float64 beyond."""
    peak = float(values.max()) if len(values) else 0.0
    return np.int64 if peak * peak * max(len(values), 1) < _INT64_SAFE else np.float64


def _history_columns(
    layout: _Layout, history_days: np.ndarray, n_baseline: np.ndarray, window: int, min_history: int
) -> dict[str, np.ndarray]:
    rows = np.arange(len(layout.order))
    previous_day = np.concatenate(([0], layout.day[:-1]))
    gap = np.where(rows == layout.actor_start, window, layout.day - previous_day)
    return {
        "history_days": history_days.astype(np.int32),
        "baseline_span_days": n_baseline.astype(np.int32),
        "days_since_last_active": np.minimum(gap, window).astype(np.int32),
        "has_baseline": history_days >= min_history,
    }


def _float_columns() -> list[str]:
    """The float32 columns added, in output order (the history columns follow them)."""
    names = [n for f in COUNT_FEATURES for n in (mean_column(f), std_column(f), z_column(f))]
    groups = [group_z_column(g) for g in Z_GROUPS]
    return [*names, "max_z", *groups, *(paper_z_column(f) for f in PAPER_COUNT_FEATURES)]


def _empty_result(base: pd.DataFrame) -> pd.DataFrame:
    columns = {name: pd.Series([], dtype=np.float32) for name in _float_columns()}
    for name in HISTORY_COLUMNS:
        columns[name] = pd.Series([], dtype=bool if name == "has_baseline" else np.int32)
    return pd.concat([base, pd.DataFrame(columns, index=base.index)], axis=1)


def recent_first_seen_repos(base: pd.DataFrame, days: int) -> np.ndarray:
    """Per row: repos the actor first accessed over the `days` calendar days ending on the row's day.

    One sort and one `searchsorted` on an (actor, day) key; window sums are differences of prefix sums.
    """
    if base.empty:
        return np.zeros(0, dtype=np.int64)
    actor = pd.factorize(base["actor"])[0].astype(np.int64)
    day = ((base["day"] - base["day"].min()) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)
    key = actor * (int(day.max()) + days + 1) + day
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    sums = _cumulative(base["first_seen_repos"].to_numpy(dtype=np.int64)[order])
    start = np.searchsorted(sorted_key, sorted_key - (days - 1), side="left")
    out = np.empty(len(order), dtype=np.int64)
    out[order] = sums[1:] - sums[start]
    return out


def behaviour_features(base: pd.DataFrame, settings: FeaturesConfig, baseline: str = "calendar") -> pd.DataFrame:
    """Base features plus per-actor trailing baselines, z-scores and history depth (see module doc).

    `baseline="calendar"` (default) averages over calendar days since the actor's first day, days
    without events counting as 0; `baseline="active"` averages over the actor's active days only.
    Rows keep the input's order and index; behaviour columns already in `base` are recomputed.
    """
    if baseline not in BASELINES:
        raise BehaviourFeatureError(f"baseline={baseline!r}: expected one of {BASELINES}")
    _check_input(base)
    base = base.drop(columns=[c for c in (*_float_columns(), *HISTORY_COLUMNS) if c in base.columns])
    if "recent_first_seen_repos" not in base.columns:
        base = base.assign(recent_first_seen_repos=recent_first_seen_repos(base, settings.sustained_days))
    if base.empty:
        return _empty_result(base)
    window = int(settings.baseline_days)
    layout = _layout(base, window)
    order, day = layout.order, layout.day
    identity = bool(np.array_equal(order, np.arange(len(order))))
    history_days = np.arange(len(order)) - layout.window_start
    n_baseline = layout.span_days if baseline == "calendar" else history_days
    own = _Denominators.of(n_baseline)
    paper = _Denominators.of(np.arange(len(order)) - layout.actor_start)
    human = ~base["is_bot"].to_numpy(dtype=bool) if "is_bot" in base.columns else np.ones(len(order), bool)
    human = human if identity else human[order]

    names = _float_columns()
    block = np.empty((len(order), len(names)), dtype=np.float32, order="F")
    position = {name: k for k, name in enumerate(names)}

    def put(name: str, sorted_values: np.ndarray) -> None:
        if identity:
            block[:, position[name]] = sorted_values
        else:
            block[order, position[name]] = sorted_values

    def one_feature(feature: str) -> np.ndarray:
        """Write the feature's mean, std, z (and paper z) columns; return where it is novel."""
        raw = base[feature].to_numpy()
        values = (raw if identity else raw[order]).astype(_count_dtype(raw), copy=False)
        sums = _cumulative(values)
        squares = _cumulative(values * values)
        s1 = sums[:-1] - sums[layout.window_start]
        mean, std = _moments(s1, squares[:-1] - squares[layout.window_start], own)
        peer_centre, peer_scale = _peer_baseline(values, day, human, layout.n_days, window)
        centre = np.where(n_baseline >= 1, mean, peer_centre[day])
        scale = np.where(std > 0, std, peer_scale[day])
        z = (values - centre) / scale
        put(mean_column(feature), mean)
        put(std_column(feature), std)
        put(z_column(feature), np.maximum(z, 0.0) if settings.clip_negative_z else z)
        if feature in PAPER_COUNT_FEATURES:
            p1 = sums[:-1] - sums[layout.actor_start]
            p_mean, p_std = _moments(p1, squares[:-1] - squares[layout.actor_start], paper)
            with np.errstate(divide="ignore", invalid="ignore"):
                paper_z = np.where(p_std > 0, (values - p_mean) / p_std, 0.0)
            put(paper_z_column(feature), np.maximum(paper_z, 0.0))
        return (values > 0) & (s1 == 0) & (n_baseline >= 1)

    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        novel_masks = list(pool.map(one_feature, COUNT_FEATURES))
    novel = np.add.reduce(novel_masks, dtype=np.int32)
    for group, members in Z_GROUPS.items():
        block[:, position[group_z_column(group)]] = block[:, [position[z_column(f)] for f in members]].max(axis=1)
    block[:, position["max_z"]] = block[:, [position[group_z_column(g)] for g in Z_GROUPS]].max(axis=1)
    counts = _history_columns(layout, history_days, n_baseline, window, settings.min_history_days)
    counts["novel_features"] = novel
    if not identity:
        for name, sorted_values in counts.items():
            column = np.empty_like(sorted_values)
            column[order] = sorted_values
            counts[name] = column
    floats = pd.DataFrame(block, index=base.index, columns=names, copy=False)
    history = pd.DataFrame(counts, index=base.index)
    return pd.concat([base, floats, history], axis=1)
