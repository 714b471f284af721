"""Which columns of the features table the model scores: ours (`full`) or the paper's (`paper`)."""

from __future__ import annotations

from github_ueba.features.behaviour import (
    COUNT_FEATURES,
    PAPER_COUNT_FEATURES,
    paper_z_column,
    z_column,
)

#: Per-row context the model sees besides counts and z-scores: how deep and recent the history is.
HISTORY_FEATURES: tuple[str, ...] = ("history_days", "days_since_last_active", "has_baseline", "novel_features")

#: Ours: every base count, its z-score against the actor's own past (peer scale when that past is
#: flat), the weekend/leaver flags and the history depth, so a newcomer's zeros are not "normal".
FULL_FEATURES: tuple[str, ...] = (
    "is_weekend",
    "is_leaver",
    *COUNT_FEATURES,
    *(z_column(f) for f in COUNT_FEATURES),
    *HISTORY_FEATURES,
)

#: The paper's plain method: its counts, is_weekend, is_leaver and its z-scores (mean/std over the
#: actor's active days since the start of the data, z = 0 when that std is 0, clipped at 0).
PAPER_FEATURES: tuple[str, ...] = (
    "is_weekend",
    *PAPER_COUNT_FEATURES,
    "is_leaver",
    *(paper_z_column(f) for f in PAPER_COUNT_FEATURES),
)

FEATURE_SETS: dict[str, tuple[str, ...]] = {"full": FULL_FEATURES, "paper": PAPER_FEATURES}


class FeatureSetError(ValueError):
    """An unknown feature set name."""


def columns_for(feature_set: str) -> list[str]:
    """The model's input columns for `model.feature_set` (`full` or `paper`)."""
    try:
        return list(FEATURE_SETS[feature_set])
    except KeyError:
        raise FeatureSetError(
            f"model.feature_set={feature_set!r}: expected one of {sorted(FEATURE_SETS)}"
        ) from None
