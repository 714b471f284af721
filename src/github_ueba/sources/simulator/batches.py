"""Events as parallel integer-code arrays (`EventBatch`), and what one scenario injects (`Injection`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np


@dataclass
class EventBatch:
    """Events as parallel code arrays (indexes into the world's vocabularies; -1 = null)."""

    ts: np.ndarray  # int64 epoch ms UTC
    person: np.ndarray  # int32 index into world.names
    action: np.ndarray  # int16 index into ACTIONS
    repo: np.ndarray  # int32 index into world.repos
    user: np.ndarray  # int32 index into world.names (the user acted upon)
    ip: np.ndarray  # int32 index into world.ips
    ua: np.ndarray  # int16 index into USER_AGENTS
    token: np.ndarray  # int8 index into TOKEN_KINDS
    transport: np.ndarray  # int8 index into TRANSPORTS
    visibility: np.ndarray  # int8 index into VISIBILITIES
    permission: np.ndarray  # int8 index into PERMISSIONS

    def __len__(self) -> int:
        return len(self.ts)

    def select(self, index: np.ndarray) -> EventBatch:
        """The events at `index` (an integer or boolean array)."""
        return EventBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(batches: Sequence[EventBatch]) -> EventBatch:
        """All events of `batches`, in order."""
        return EventBatch(**{f.name: np.concatenate([getattr(b, f.name) for b in batches])
                             for f in fields(EventBatch)})


@dataclass
class Injection:
    """What one scenario adds: event batches, labelled batches, and repos gone after a moment."""

    events: list[EventBatch] = field(default_factory=list)
    labelled: list[tuple[EventBatch, str]] = field(default_factory=list)
    repo_cuts: list[tuple[int, int]] = field(default_factory=list)  # (repo, epoch ms after which it is gone)

    def add(self, batch: EventBatch, scenario: str | None = None) -> None:
        """Add events; label their actor-days with `scenario` when given."""
        self.events.append(batch)
        if scenario is not None and len(batch):
            self.labelled.append((batch, scenario))

    def extend(self, other: Injection) -> None:
        """Merge another injection into this one."""
        self.events += other.events
        self.labelled += other.labelled
        self.repo_cuts += other.repo_cuts
