"""Scripted events: one actor's planned actions on one local day turned into events (every scenario uses it)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from github_ueba.sources.simulator.batches import EventBatch
from github_ueba.sources.simulator.catalog import (
    ACTION_CHANNEL,
    ACTION_CODE,
    ACTION_SCOPE,
    DAY_MS,
    GIT,
    PERMISSIONS,
    SYSTEM,
    TOKEN_KINDS,
    TRANSPORTS,
    UA_CODE,
    VISIBILITIES,
)
from github_ueba.sources.simulator.routine import client_columns, utc_ms
from github_ueba.sources.simulator.world import World


def _codes(values: str | Sequence[str] | int | Sequence[int] | np.ndarray | None, vocab: Sequence[str] | dict,
           n: int) -> np.ndarray:
    """Broadcast names (looked up in `vocab`) or codes to `n` codes; None -> -1 (null)."""
    if values is None:
        return np.full(n, -1)
    items = [values] if isinstance(values, (str, int, np.integer)) else list(values)
    lookup = vocab if isinstance(vocab, dict) else {v: i for i, v in enumerate(vocab)}
    codes = np.array([lookup[v] if isinstance(v, str) else int(v) for v in items])
    return np.broadcast_to(codes, (n,)).copy() if len(codes) == 1 else codes


def scripted(world: World, person: int, day: int, hours: np.ndarray, actions: str | Sequence[str],
             repos: int | Sequence[int] | np.ndarray | None = None, *, ip: int | None = None,
             users: int | Sequence[int] | np.ndarray | None = None, ua: str | None = None,
             token: str | None = None, transport: str | None = None,
             visibility: str | Sequence[str | int] | None = None,
             permission: str | Sequence[str | int] | None = None) -> EventBatch:
    """Turn one actor's planned actions on one local day into events (defaults from their profile).

    `hours` are local hours of `person`; `ip` defaults to their main IP (country follows the IP);
    `ua`, `token` and `transport` override the profile for git/web events. A session that would
    straddle UTC midnight is nudged into the UTC day holding most of it (one session, one actor-day),
    and events outside the simulated window are dropped, so labels built from the batch have events.
    """
    hours = np.atleast_1d(np.asarray(hours, float))
    n = len(hours)
    action = _codes(actions, ACTION_CODE, n).astype(np.int16)
    repo = _codes(repos, {}, n)
    repo = np.where(ACTION_SCOPE[action] == 0, repo, -1)
    people = np.full(n, person)
    ua_codes, token_codes, transport_codes = client_columns(world, people, action)
    client = ACTION_CHANNEL[action] != SYSTEM
    if ua is not None:
        ua_codes = np.where(client, UA_CODE[ua], ua_codes).astype(np.int16)
    if token is not None:
        token_codes = np.where(client, TOKEN_KINDS.index(token), token_codes).astype(np.int8)
    if transport is not None:
        transport_codes = np.where(ACTION_CHANNEL[action] == GIT, TRANSPORTS.index(transport), -1).astype(np.int8)
    batch = EventBatch(
        ts=_within_one_utc_day(world, utc_ms(world, person, day, hours)), person=people.astype(np.int32),
        action=action, repo=repo.astype(np.int32), user=_codes(users, {}, n).astype(np.int32),
        ip=np.full(n, world.ip_table[person, 0] if ip is None else ip, np.int32),
        ua=ua_codes, token=token_codes, transport=transport_codes,
        visibility=_codes(visibility, VISIBILITIES, n).astype(np.int8),
        permission=_codes(permission, PERMISSIONS, n).astype(np.int8),
    )
    return batch.select((batch.ts >= world.t0_ms) & (batch.ts < world.end_ms))


def _within_one_utc_day(world: World, ts: np.ndarray, margin_ms: int = 5 * 60_000) -> np.ndarray:
    """Shift a session crossing UTC midnight into the UTC day holding most of its events."""
    day = (ts - world.t0_ms) // DAY_MS
    if len(ts) == 0 or day.min() == day.max():
        return ts
    main = day.min() + np.bincount(day - day.min()).argmax()
    low = world.t0_ms + main * DAY_MS + margin_ms
    high = world.t0_ms + (main + 1) * DAY_MS - margin_ms
    if ts.min() < low:
        return ts + (low - ts.min())
    return ts - (ts.max() - high)


def work_hours(world: World, rng: np.random.Generator, person: int, n: int) -> np.ndarray:
    """`n` sorted local hours inside `person`'s working day."""
    return np.sort(world.hour_lo[person] + world.hour_span[person] * rng.beta(2.0, 2.0, n))


def burst(rng: np.random.Generator, start_hour: float, n: int, mean_gap_minutes: float) -> np.ndarray:
    """`n` local hours from `start_hour`, a few minutes apart (one sitting)."""
    return start_hour + np.cumsum(rng.exponential(mean_gap_minutes / 60.0, n))


def working_day(world: World, rng: np.random.Generator, low: int, high: int) -> int:
    """A random Monday-to-Friday local day in [low, high] (any day if the range has none)."""
    days = np.arange(low, high + 1)
    weekdays = days[world.weekday(days) < 5]
    return int(rng.choice(weekdays if len(weekdays) else days))
