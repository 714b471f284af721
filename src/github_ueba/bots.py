"""Bot and service-account marking: actor-name patterns, and actors who act almost only via deploy keys."""

from __future__ import annotations

import re

import pandas as pd

from github_ueba.config import ConfigError


def bot_mask(actors: pd.Series, patterns: list[str]) -> pd.Series:
    """True where the actor name matches any of `patterns` (regular expressions, case-insensitive)."""
    if not patterns:
        return pd.Series(False, index=actors.index)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ConfigError(f"config key 'features.bot_patterns': {pattern!r} is not a valid regex: {err}") from None
    combined = "|".join(f"(?:{p})" for p in patterns)
    return actors.astype(str).str.contains(combined, case=False, regex=True)


def deploy_key_mask(base: pd.DataFrame, min_share: float) -> pd.Series:
    """True on every row of an actor whose share of deploy-key events over the table is >= `min_share`."""
    totals = base.groupby("actor", sort=False)[["deploy_key_events", "events"]].transform("sum")
    return (totals["deploy_key_events"] >= min_share * totals["events"]) & (totals["deploy_key_events"] > 0)


def mark_bots(base: pd.DataFrame, patterns: list[str], deploy_key_share: float) -> pd.Series:
    """The `is_bot` column: a name pattern matches, or the actor works (almost) only through deploy keys."""
    mask = bot_mask(base["actor"], patterns)
    if "deploy_key_events" in base.columns:
        mask = mask | deploy_key_mask(base, deploy_key_share)
    return mask
