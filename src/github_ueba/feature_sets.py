"""Which columns of the features table the model scores: `full` (ours), `wide` or `paper`.

IsolationForest chooses split features uniformly, so with dozens of columns a single extreme count
is rarely split on and its row is barely isolated. `full` therefore gives the forest the deviation
summaries (largest z-score overall and per group) plus the day's event count and first-seen
counts, rather than every count and every z-score (`wide`). benchmarks/bench_model.py prints how
each set ranks planted attacks on synthetic data.
"""

from __future__ import annotations

from github_ueba.errors import UebaError
from github_ueba.features.behaviour import (
    COUNT_FEATURES,
    PAPER_COUNT_FEATURES,
    Z_GROUPS,
    group_z_column,
    paper_z_column,
    z_column,
)

#: How deep and recent the actor's history is, so a newcomer's or returner's day is not "normal".
#: (`has_baseline` is constant on training rows, and `novel_features` is already in the peer-scaled
#: z-scores, so only `wide` carries them.)
HISTORY_FEATURES: tuple[str, ...] = ("history_days", "days_since_last_active")

#: Absolute daily volume the forest sees beside the deviations. More raw volumes (clones, pushes,
#: downloads, repos, IPs) made heavy users' busy days outrank planted attacks in our measurements.
VOLUME_FEATURES: tuple[str, ...] = ("events",)

#: Raw first-seen counts: a slow attack (a few new repos a day for weeks) stops looking unusual
#: against the actor's own, adapting baseline, but stays unusual against everyone else's counts.
#: (Adding first_seen_ips/actions and new_repos too ranked planted one-day attacks lower for no
#: gain in average precision on the simulator.)
FIRST_SEEN_FEATURES: tuple[str, ...] = ("first_seen_repos", "recent_first_seen_repos")

#: Ours: flags, history depth, the largest z-score overall and per group, the day's volume and
#: its first-seen counts.
FULL_FEATURES: tuple[str, ...] = (
    "is_weekend",
    "is_leaver",
    *HISTORY_FEATURES,
    "max_z",
    *(group_z_column(g) for g in Z_GROUPS),
    *VOLUME_FEATURES,
    *FIRST_SEEN_FEATURES,
)

#: Every base count and its z-score, with flags, history depth and max_z (for comparison).
WIDE_FEATURES: tuple[str, ...] = (
    "is_weekend",
    "is_leaver",
    *COUNT_FEATURES,
    *(z_column(f) for f in COUNT_FEATURES),
    "max_z",
    *HISTORY_FEATURES,
    "has_baseline",
    "novel_features",
)

#: The paper's plain method: its counts, is_weekend, is_leaver and its z-scores (mean/std over the
#: actor's active days since the start of the data, z = 0 when that std is 0, clipped at 0).
PAPER_FEATURES: tuple[str, ...] = (
    "is_weekend",
    *PAPER_COUNT_FEATURES,
    "is_leaver",
    *(paper_z_column(f) for f in PAPER_COUNT_FEATURES),
)

FEATURE_SETS: dict[str, tuple[str, ...]] = {"full": FULL_FEATURES, "wide": WIDE_FEATURES, "paper": PAPER_FEATURES}


class FeatureSetError(UebaError, ValueError):
    """An unknown feature set name."""


def columns_for(feature_set: str) -> list[str]:
    """The model's input columns for `model.feature_set` (`full`, `wide` or `paper`)."""
    try:
        return list(FEATURE_SETS[feature_set])
    except KeyError:
        raise FeatureSetError(
            f"model.feature_set={feature_set!r}: expected one of {sorted(FEATURE_SETS)}"
        ) from None
