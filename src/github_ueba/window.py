"""The time window: which days are read, which serve as history, and which are scored."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from github_ueba.config import WindowConfig


@dataclass(frozen=True)
class Window:
    """Resolved days (all inclusive, UTC): read [start, end], train before validation_start/detect_start."""

    start: dt.date
    end: dt.date
    validation_start: dt.date
    detect_start: dt.date

    @property
    def end_exclusive(self) -> dt.date:
        """The day after `end`, as KQL's `endtime` wants it."""
        return self.end + dt.timedelta(days=1)

    def to_dict(self) -> dict[str, str]:
        """ISO strings, for window.json."""
        return {k: v.isoformat() for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> "Window":
        """Inverse of `to_dict`."""
        return cls(**{k: dt.date.fromisoformat(data[k]) for k in ("start", "end", "validation_start", "detect_start")})


def resolve(cfg: WindowConfig, default_end: dt.date) -> Window:
    """Days of the window: `cfg.end` (or the source's last full day) back `lookback_days` days."""
    end = dt.date.fromisoformat(cfg.end) if cfg.end else default_end
    start = end - dt.timedelta(days=cfg.lookback_days - 1)
    detect_start = end - dt.timedelta(days=cfg.detect_days - 1)
    validation_start = detect_start - dt.timedelta(days=cfg.validation_days)
    return Window(start=start, end=end, validation_start=validation_start, detect_start=detect_start)


def last_full_day(latest_day: dt.date | None, now: dt.datetime | None = None) -> dt.date:
    """The source's last full UTC day: the latest event's day, unless that day is still running."""
    now = now or dt.datetime.now(dt.timezone.utc)
    yesterday = now.date() - dt.timedelta(days=1)
    return yesterday if latest_day is None else min(latest_day, yesterday)
