"""Bot and service-account detection by actor-name patterns (configurable)."""

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
