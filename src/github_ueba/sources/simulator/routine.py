"""Routine activity: everyone's ordinary work drawn per actor-day in numpy arrays (no loop per event)."""

from __future__ import annotations

import numpy as np

from github_ueba.sources.simulator.batches import EventBatch
from github_ueba.sources.simulator.catalog import (
    ACTION_CHANNEL,
    ACTION_CODE,
    ACTION_SCOPE,
    ADMIN,
    DAY_MS,
    DEVELOPER,
    GIT,
    HOUR_MS,
    NEW_REPO_WORDS,
    PERMISSIONS,
    VISIBILITIES,
    WEB,
)
from github_ueba.sources.simulator.profiles import ADMIN_ACTIONS_PER_DAY, ADMIN_ROUTINE, ROUTINE_ACTIONS
from github_ueba.sources.simulator.world import World

_ROUTINE_CODES = np.array([ACTION_CODE[a] for a in ROUTINE_ACTIONS], np.int16)
_CANDIDATE, _NO_REPO, _NEW_REPO = range(3)
_REPOLESS_ROUTINE = ("public_key.create", "personal_access_token.request_created")  # a user's key, a token request
_ROUTINE_REPO_MODE = np.array(
    [_NEW_REPO if a == "repo.create" else _NO_REPO if a in _REPOLESS_ROUTINE else _CANDIDATE for a in ROUTINE_ACTIONS],
    np.int8,
)


def active_days(world: World, rng: np.random.Generator) -> np.ndarray:
    """[person, local day] whether the person works that day (rhythm, vacation, employment)."""
    day = np.arange(world.days)
    weekend = world.weekday(day) >= 5
    p = np.where(weekend[None, :], world.weekend_prob[:, None], world.weekday_prob[:, None])
    active = rng.random((world.n_people, world.days)) < p
    on_vacation = (day >= world.vacation_start[:, None]) & (day < (world.vacation_start + world.vacation_len)[:, None])
    employed = (day >= world.start_day[:, None]) & (day <= world.end_day[:, None])
    return active & ~on_vacation & employed


def _local_hours(world: World, rng: np.random.Generator, person: np.ndarray) -> np.ndarray:
    """Local hour of day of each event: inside working hours (humans: peaked mid-day), some evenings."""
    n = len(person)
    human = world.human[person]
    u = rng.random(n)
    u = np.where(human, 0.5 * (u + rng.random(n)), u)  # humans: triangular, peaked mid-day
    hours = world.hour_lo[person] + world.hour_span[person] * u
    late = np.flatnonzero(rng.random(n) < world.evening_share[person])
    hours[late] = world.hour_lo[person[late]] + world.hour_span[person[late]] + rng.exponential(1.5, len(late))
    return np.where(human, hours, hours % 24.0)  # a human's late hours run past local midnight


def utc_ms(world: World, person: np.ndarray | int, day: np.ndarray | int, hours: np.ndarray) -> np.ndarray:
    """Epoch ms of a local day and hour of `person` (their UTC offset applied)."""
    local = (np.asarray(hours, float) - world.offset[person]) * HOUR_MS
    return world.t0_ms + np.asarray(day, np.int64) * DAY_MS + local.astype(np.int64)


def _pick_usual_repos(world: World, rng: np.random.Generator, person: np.ndarray) -> np.ndarray:
    """Humans: their usual repos by a Zipf preference, rarely a stray one; machines: any repo."""
    k = world.candidates.shape[1]
    cum = np.cumsum(1.0 / np.arange(1, k + 1) ** 0.9)
    rank = np.minimum(np.searchsorted(cum / cum[-1], rng.random(len(person)), side="right"), k - 1)
    usual = world.candidates[person, rank]
    anywhere = rng.integers(0, world.n_base_repos, len(person)).astype(np.int32)
    stray = ~world.human[person] | (rng.random(len(person)) < 0.002)
    return np.where(stray, anywhere, usual)


def _pick_ips(world: World, rng: np.random.Generator, person: np.ndarray) -> np.ndarray:
    """One of the person's usual IPs per event: the main one with its share, else any other evenly."""
    main, count = world.ip_main_share[person], world.ip_count[person]
    u = rng.random(len(person))
    other = 1 + ((u - main) / np.maximum(1.0 - main, 1e-9) * (count - 1)).astype(np.int64)
    column = np.where(u < main, 0, np.minimum(other, count - 1))
    return world.ip_table[person, column]


def client_columns(world: World, person: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, ...]:
    """User agent, token kind and transport of each event from the actor's profile and the channel."""
    channel = ACTION_CHANNEL[action]
    git, web = channel == GIT, channel == WEB
    ua = np.where(git, world.git_ua[person], np.where(web, world.web_ua[person], -1)).astype(np.int16)
    token = np.where(git, world.git_token[person], np.where(web, world.web_token[person], -1)).astype(np.int8)
    transport = np.where(git, world.transport[person], -1).astype(np.int8)
    return ua, token, transport


def _batch(world: World, rng: np.random.Generator, ts: np.ndarray, person: np.ndarray, action: np.ndarray,
           repo: np.ndarray, user: np.ndarray | None = None, visibility: np.ndarray | None = None,
           permission: np.ndarray | None = None) -> EventBatch:
    """A batch with IPs and client columns filled from the actors' profiles."""
    n = len(ts)
    ua, token, transport = client_columns(world, person, action)
    none = np.full(n, -1, np.int8)
    return EventBatch(
        ts=ts.astype(np.int64), person=person.astype(np.int32), action=action.astype(np.int16),
        repo=repo.astype(np.int32), user=(np.full(n, -1) if user is None else user).astype(np.int32),
        ip=_pick_ips(world, rng, person), ua=ua, token=token, transport=transport,
        visibility=none if visibility is None else visibility.astype(np.int8),
        permission=none if permission is None else permission.astype(np.int8),
    )


def routine_events(world: World, rng: np.random.Generator, active: np.ndarray) -> EventBatch:
    """Everyone's ordinary work: Poisson counts per actor-day and action, expanded to events."""
    noise = rng.gamma(world.day_noise_shape[:, None], 1.0 / world.day_noise_shape[:, None], active.shape)
    lam = (active * noise)[:, :, None] * world.rates[:, None, :]
    counts = rng.poisson(lam).ravel()
    cells = np.flatnonzero(counts)
    repeat = counts[cells]
    person, day, slot = (np.repeat(i, repeat) for i in np.unravel_index(cells, lam.shape))
    action = _ROUTINE_CODES[slot]
    ts = utc_ms(world, person, day, _local_hours(world, rng, person))
    mode = _ROUTINE_REPO_MODE[slot]
    repo = np.where(mode == _CANDIDATE, _pick_usual_repos(world, rng, person), -1).astype(np.int32)
    visibility = np.full(len(ts), -1, np.int8)
    created = np.flatnonzero(mode == _NEW_REPO)
    if len(created):
        creators = person[created]
        words = np.asarray(NEW_REPO_WORDS)[rng.integers(0, len(NEW_REPO_WORDS), len(created))]
        owner_team = np.where(world.team[creators] >= 0, world.team[creators],
                              rng.integers(0, world.cfg.n_teams, len(created)))
        serial = np.char.add("-", np.arange(1, len(created) + 1).astype(str))
        names = np.char.add(np.char.add(f"{world.cfg.org}/", world.team_names[owner_team]),
                            np.char.add(np.char.add("-", words), serial))
        vis = rng.choice(len(VISIBILITIES), len(created), p=[0.05, 0.7, 0.25])
        repo[created] = world.add_repos(names.tolist(), owner_team, vis)
        visibility[created] = vis
    return _batch(world, rng, ts, person, action, repo, visibility=visibility)


def admin_routine_events(world: World, rng: np.random.Generator, active: np.ndarray) -> EventBatch:
    """Admins' legitimate rare admin work, a few actions a week each."""
    admins = world.people_of(ADMIN)
    counts = rng.poisson(active[admins] * ADMIN_ACTIONS_PER_DAY).ravel()
    cells = np.flatnonzero(counts)
    row, day = (np.repeat(i, counts[cells]) for i in np.unravel_index(cells, (len(admins), world.days)))
    person = admins[row]
    n = len(person)
    shares = np.array([a[1] for a in ADMIN_ROUTINE])
    kind = rng.choice(len(ADMIN_ROUTINE), n, p=shares / shares.sum())
    action = np.array([ACTION_CODE[a[0]] for a in ADMIN_ROUTINE], np.int16)[kind]
    developers = world.people_of(DEVELOPER)
    outsiders = np.arange(world.n_people, len(world.names))
    target = np.array([a[3] or "" for a in ADMIN_ROUTINE])[kind]
    user = np.where(target == "member", developers[rng.integers(0, len(developers), n)],
                    np.where(target == "outsider", outsiders[rng.integers(0, len(outsiders), n)], -1))
    permission = np.full(n, -1, np.int8)
    for k, (_, _, perms, _) in enumerate(ADMIN_ROUTINE):
        mine = np.flatnonzero(kind == k)
        if perms and len(mine):
            p = np.array([s for _, s in perms])
            codes = np.array([PERMISSIONS.index(v) for v, _ in perms])
            permission[mine] = codes[rng.choice(len(perms), len(mine), p=p)]
    in_repo = ACTION_SCOPE[action] == 0
    repo = np.where(in_repo, rng.integers(0, world.n_base_repos, n), -1)
    ts = utc_ms(world, person, day, _local_hours(world, rng, person))
    return _batch(world, rng, ts, person, action, repo, user=user, permission=permission)
