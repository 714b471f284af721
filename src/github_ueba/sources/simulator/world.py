"""The simulated population: people with teams, time zones, rhythms and clients; repositories; IP addresses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from github_ueba.config import SimulatorSource
from github_ueba.sources.simulator.catalog import (
    ADMIN,
    BOT,
    DATACENTER_OCTETS,
    DAY_MS,
    DEVELOPER,
    FIRST_NAMES,
    HUMAN_CLIENTS,
    IP_FIRST_OCTETS,
    LAST_NAMES,
    REPO_SUFFIXES,
    SERVICE,
    TEAM_NAMES,
    TOKEN_KINDS,
    TRANSPORTS,
    UA_CODE,
    VISIBILITIES,
    ZONES,
)
from github_ueba.sources.simulator.profiles import (
    BOT_PROFILES,
    HUMAN_RATES,
    MACHINE_AGENT,
    MAINTAINER_RATES,
    ROUTINE_ACTIONS,
    SERVICE_PROFILES,
)

_OUTSIDERS = 30  # handles outside the org that admins invite


@dataclass
class World:
    """Who is who and what exists: per-person profile arrays, repositories, IP addresses."""

    cfg: SimulatorSource
    t0_ms: int
    days: int
    weekday0: int
    names: np.ndarray  # people first, then outside handles (only ever a `user`)
    n_people: int
    role: np.ndarray
    actor_id: np.ndarray
    team: np.ndarray
    maintainer: np.ndarray
    offset: np.ndarray  # UTC offset in hours
    country: np.ndarray  # home country code
    hour_lo: np.ndarray  # local hour the working day starts
    hour_span: np.ndarray  # hours in the working day
    evening_share: np.ndarray
    human: np.ndarray
    start_day: np.ndarray  # first employed local day
    end_day: np.ndarray  # last employed local day
    weekday_prob: np.ndarray
    weekend_prob: np.ndarray
    vacation_start: np.ndarray
    vacation_len: np.ndarray
    day_noise_shape: np.ndarray
    rates: np.ndarray  # [person, routine action] mean count per active day
    git_ua: np.ndarray
    web_ua: np.ndarray
    git_token: np.ndarray
    web_token: np.ndarray
    transport: np.ndarray
    candidates: np.ndarray  # [person, K] usual repos, in the person's order of preference
    ip_table: np.ndarray  # [person, 8] usual IPs (-1 pad); column 0 is the main one
    ip_count: np.ndarray  # usual IPs per person
    ip_main_share: np.ndarray  # share of events from the main IP (the rest spread evenly)
    team_names: np.ndarray
    repos: list[str]
    repo_team: list[int]
    repo_visibility: list[int]
    n_base_repos: int
    ips: list[str]
    ip_country: list[str]

    @property
    def end_ms(self) -> int:
        """Epoch ms just after the last simulated UTC day."""
        return self.t0_ms + self.days * DAY_MS

    def people_of(self, role: int) -> np.ndarray:
        """Person indexes with `role`."""
        return np.flatnonzero(self.role == role)

    def add_ips(self, rng: np.random.Generator, countries: Sequence[str] | np.ndarray,
                datacenter: bool = False) -> np.ndarray:
        """Register new random public IPs in `countries`; return their codes."""
        countries = np.asarray(countries, dtype=str)
        n = len(countries)
        first = np.asarray(DATACENTER_OCTETS)[rng.integers(0, len(DATACENTER_OCTETS), n)]
        if not datacenter:
            for country in np.unique(countries):
                here = countries == country
                first[here] = rng.choice(IP_FIRST_OCTETS[str(country)], int(here.sum()))
        octets = [first, rng.integers(0, 256, n), rng.integers(0, 256, n), rng.integers(1, 255, n)]
        text = octets[0].astype(str)
        for part in octets[1:]:
            text = np.char.add(np.char.add(text, "."), part.astype(str))
        start = len(self.ips)
        self.ips.extend(text.tolist())
        self.ip_country.extend(countries.tolist())
        return np.arange(start, start + n, dtype=np.int32)

    def add_repos(self, names: Sequence[str], teams: Sequence[int], visibility: Sequence[int]) -> np.ndarray:
        """Register repositories created during the window; return their codes."""
        start = len(self.repos)
        self.repos.extend(names)
        self.repo_team.extend(int(t) for t in teams)
        self.repo_visibility.extend(int(v) for v in visibility)
        return np.arange(start, start + len(names), dtype=np.int32)

    def team_repos(self, team: int) -> np.ndarray:
        """The base repositories of `team`."""
        per = self.cfg.repos_per_team
        return np.arange(team * per, (team + 1) * per, dtype=np.int32)

    def foreign_repos(self, rng: np.random.Generator, person: int, n: int) -> np.ndarray:
        """`n` base repositories outside `person`'s usual set, in random order (reused if too few exist)."""
        unseen = np.setdiff1d(np.arange(self.n_base_repos, dtype=np.int32), self.candidates[person])
        if not len(unseen):
            unseen = np.flatnonzero(np.asarray(self.repo_team[: self.n_base_repos]) != self.team[person])
        return np.resize(rng.permutation(unseen), n).astype(np.int32)

    def weekday(self, day: np.ndarray | int) -> np.ndarray | int:
        """Local weekday (Monday = 0) of a local day index."""
        return (self.weekday0 + day) % 7


def _handles(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` unique GitHub-like handles (jane-doe, jdoe, janedoe42)."""
    first_index = rng.integers(0, len(FIRST_NAMES), n)
    first = np.asarray(FIRST_NAMES)[first_index]
    initial = np.asarray([name[0] for name in FIRST_NAMES])[first_index]
    last = np.asarray(LAST_NAMES)[rng.integers(0, len(LAST_NAMES), n)]
    style = rng.integers(0, 3, n)
    digits = rng.integers(10, 100, n).astype(str)
    dashed = np.char.add(np.char.add(first, "-"), last)
    joined = np.char.add(np.char.add(first, last), digits)
    handle = np.where(style == 0, dashed, np.where(style == 1, np.char.add(initial, last), joined))
    series = pd.Series(handle)
    repeat = series.groupby(series).cumcount().to_numpy()
    return np.where(repeat > 0, np.char.add(np.char.add(handle, "-"), repeat.astype(str)), handle)


def _machine_roster(profiles: tuple, n: int, extra_name: str) -> tuple[list[str], list[int]]:
    """Names and profile indexes of `n` machine accounts: the listed profiles, then numbered copies."""
    names = [p[0] for p in profiles[:n]]
    names += [extra_name.format(k=k) for k in range(2, 2 + n - len(names))]
    return names, [i if i < len(profiles) else 0 for i in range(n)]


def _repositories(cfg: SimulatorSource, rng: np.random.Generator) -> tuple[np.ndarray, list[str], list[int], list[int]]:
    """Team names and `org/team-suffix` repositories with their team and visibility."""
    base = np.asarray(TEAM_NAMES)[np.arange(cfg.n_teams) % len(TEAM_NAMES)]
    rounds = np.arange(cfg.n_teams) // len(TEAM_NAMES)
    team_names = np.where(rounds > 0, np.char.add(base, (rounds + 1).astype(str)), base)
    per = cfg.repos_per_team
    suffix = np.asarray(REPO_SUFFIXES)[np.arange(per) % len(REPO_SUFFIXES)]
    suffix_round = np.arange(per) // len(REPO_SUFFIXES)
    suffix = np.where(suffix_round > 0, np.char.add(suffix, (suffix_round + 1).astype(str)), suffix)
    names = np.char.add(np.char.add(f"{cfg.org}/", np.repeat(team_names, per)),
                        np.char.add("-", np.tile(suffix, cfg.n_teams)))
    visibility = rng.choice(len(VISIBILITIES), size=len(names), p=[0.05, 0.75, 0.2])
    return team_names, names.tolist(), np.repeat(np.arange(cfg.n_teams), per).tolist(), visibility.tolist()


def build_world(cfg: SimulatorSource, rng: np.random.Generator) -> World:
    """Draw the population, repositories and addresses."""
    end = dt.date.fromisoformat(cfg.end)
    first_day = end - dt.timedelta(days=cfg.days - 1)
    t0_ms = int(dt.datetime(first_day.year, first_day.month, first_day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)
    bot_names, bot_profiles = _machine_roster(BOT_PROFILES, cfg.n_bots, "ci-runner-{k}[bot]")
    svc_names, svc_profiles = _machine_roster(SERVICE_PROFILES, cfg.n_service_accounts, "svc-sync-{k}")
    n_humans = cfg.n_developers + cfg.n_admins
    handles = _handles(rng, n_humans + _OUTSIDERS)
    names = np.concatenate([handles[:n_humans], np.asarray(bot_names + svc_names, dtype=str), handles[n_humans:]])
    n_people = n_humans + len(bot_names) + len(svc_names)
    role = np.repeat(np.array([DEVELOPER, ADMIN, BOT, SERVICE], np.int8),
                     [cfg.n_developers, cfg.n_admins, len(bot_names), len(svc_names)])
    human = role <= ADMIN
    actor_id = (1_000_000 + np.cumsum(rng.integers(1, 40_000, n_people))).astype(np.int64)[rng.permutation(n_people)]

    team_names, repos, repo_team, repo_visibility = _repositories(cfg, rng)
    n_repos = len(repos)
    team = np.full(n_people, -1, np.int32)
    n_dev = cfg.n_developers
    spread = np.arange(n_dev) % cfg.n_teams
    sizes = rng.dirichlet(np.full(cfg.n_teams, 4.0))
    team[:n_dev] = np.where(np.arange(n_dev) < 2 * cfg.n_teams, spread, rng.choice(cfg.n_teams, n_dev, p=sizes))
    team[:n_dev] = team[:n_dev][rng.permutation(n_dev)]
    maintainer = np.zeros(n_people, bool)
    order = rng.permutation(n_dev)
    _, first_of_team = np.unique(team[order], return_index=True)
    maintainer[order[first_of_team]] = True

    zone_weights = np.array([z[1] for z in ZONES])
    team_zone = rng.choice(len(ZONES), cfg.n_teams, p=zone_weights / zone_weights.sum())
    own_zone = rng.choice(len(ZONES), n_people, p=zone_weights / zone_weights.sum())
    zone = np.where((team >= 0) & (rng.random(n_people) < 0.75), team_zone[np.maximum(team, 0)], own_zone)
    zone_countries = np.array([np.resize(z[2], 5) for z in ZONES], dtype="<U2")  # 5 slots, countries repeated
    country = zone_countries[zone, rng.integers(0, 5, n_people)]
    offset = np.array([z[0] for z in ZONES])[zone]
    country[~human] = "US"
    offset[~human] = 0.0

    machine_profile = [BOT_PROFILES[i] for i in bot_profiles] + [SERVICE_PROFILES[i] for i in svc_profiles]
    hour_lo = np.clip(rng.normal(9.0, 0.8, n_people), 7.0, 11.0)
    hour_span = np.clip(rng.normal(8.5, 0.8, n_people), 6.5, 10.5)
    hour_lo[~human] = [p[2][0] for p in machine_profile]
    hour_span[~human] = [p[2][1] for p in machine_profile]
    evening_share = np.where(human, rng.beta(2.0, 20.0, n_people), 0.0)

    days = cfg.days
    weekday_prob = np.where(human, np.clip(rng.normal(0.92, 0.04, n_people), 0.75, 0.99), 1.0)
    weekend_prob = np.where(human, rng.beta(1.2, 14.0, n_people), 1.0)
    weekend_prob[~human] = [1.0 if p[3] else 0.05 for p in machine_profile]
    vacation_start = np.where(human & (rng.random(n_people) < 0.7), rng.integers(0, days, n_people), days)
    vacation_len = rng.integers(5, 11, n_people)

    rates = _routine_rates(rng, role, maintainer, machine_profile, n_repos)
    git_ua, web_ua, transport, git_token, web_token = _client_profiles(rng, role, bot_names + svc_names)
    candidates = _usual_repos(rng, cfg.repos_per_team, n_repos, team, role)

    world = World(
        cfg=cfg, t0_ms=t0_ms, days=days, weekday0=first_day.weekday(), names=names, n_people=n_people,
        role=role, actor_id=actor_id, team=team, maintainer=maintainer, offset=offset, country=country,
        hour_lo=hour_lo, hour_span=hour_span, evening_share=evening_share, human=human,
        start_day=np.zeros(n_people, np.int64), end_day=np.full(n_people, days - 1, np.int64),
        weekday_prob=weekday_prob, weekend_prob=weekend_prob, vacation_start=vacation_start,
        vacation_len=vacation_len, day_noise_shape=np.where(human, 3.0, 30.0), rates=rates,
        git_ua=git_ua, web_ua=web_ua, git_token=git_token, web_token=web_token, transport=transport,
        candidates=candidates,
        ip_table=np.full((n_people, 8), -1, np.int32), ip_count=np.ones(n_people, np.int64),
        ip_main_share=np.ones(n_people),
        team_names=team_names, repos=repos, repo_team=repo_team, repo_visibility=repo_visibility,
        n_base_repos=n_repos, ips=[], ip_country=[],
    )
    _assign_addresses(world, rng)
    return world


def _routine_rates(rng: np.random.Generator, role: np.ndarray, maintainer: np.ndarray, machine_profile: list,
                   n_repos: int) -> np.ndarray:
    """[person, routine action] mean count per active day: personal activity for humans, per-repo for machines."""
    human = role <= ADMIN
    rates = np.zeros((len(role), len(ROUTINE_ACTIONS)))
    col = {a: i for i, a in enumerate(ROUTINE_ACTIONS)}
    activity = rng.lognormal(0.0, 0.45, len(role)) * np.where(role == ADMIN, 0.4, 1.0)
    for action, rate in HUMAN_RATES.items():
        rates[human, col[action]] = rate * activity[human]
    rates[human, col["git.fetch"]] *= rng.lognormal(0.0, 0.5, int(human.sum()))  # IDE auto-fetch varies a lot
    for action, rate in MAINTAINER_RATES.items():
        rates[maintainer, col[action]] = rate
    machines = np.flatnonzero(~human)
    for person, profile in zip(machines, machine_profile):
        for action, per_repo in profile[1].items():
            rates[person, col[action]] = per_repo * n_repos
    return rates


def _client_profiles(rng: np.random.Generator, role: np.ndarray, machine_names: list[str]) -> tuple[np.ndarray, ...]:
    """Per person: git and web user agents, git transport, and the token kinds of git and web requests."""
    human = role <= ADMIN
    client = rng.integers(0, len(HUMAN_CLIENTS), len(role))
    git_ua = np.array([UA_CODE[git] for git, _ in HUMAN_CLIENTS], np.int16)[client]
    web_ua = np.array([UA_CODE[web] for _, web in HUMAN_CLIENTS], np.int16)[client]
    machine_ua = np.array([UA_CODE[MACHINE_AGENT.get(n, "git/2.47.1")] for n in machine_names], np.int16)
    git_ua[~human] = machine_ua
    web_ua[~human] = machine_ua
    ssh = human & (rng.random(len(role)) < 0.45)
    transport = np.where(ssh, TRANSPORTS.index("ssh"), TRANSPORTS.index("http")).astype(np.int8)
    pat = rng.random(len(role)) < 0.35
    git_token = np.where(pat, TOKEN_KINDS.index("personal_access_token"), TOKEN_KINDS.index("oauth_token"))
    git_token = np.where(ssh, -1, git_token).astype(np.int8)
    web_token = np.full(len(role), -1, np.int8)
    git_token[role == BOT] = web_token[role == BOT] = TOKEN_KINDS.index("GitHub App server-to-server token")
    git_token[role == SERVICE] = web_token[role == SERVICE] = TOKEN_KINDS.index("personal_access_token")
    return git_ua, web_ua, transport, git_token, web_token


def _usual_repos(rng: np.random.Generator, per_team: int, n_repos: int, team: np.ndarray, role: np.ndarray,
                 extras: int = 2) -> np.ndarray:
    """[person, K] usual repos in order of preference: the team's plus a couple of others (admins: any)."""
    candidates = np.empty((len(team), per_team + extras), np.int32)
    others = rng.integers(0, n_repos - per_team, (len(team), extras))
    own_team = np.maximum(team, 0)[:, None]
    candidates[:, per_team:] = others + per_team * (others >= own_team * per_team)
    candidates[:, :per_team] = own_team * per_team + np.arange(per_team)
    admins = role == ADMIN
    candidates[admins] = rng.integers(0, n_repos, (int(admins.sum()), per_team + extras))
    return rng.permuted(candidates, axis=1)


def _assign_addresses(world: World, rng: np.random.Generator) -> None:
    """Usual IPs: a shared office IP per (team, country) plus a home IP; machines use datacenter pools."""
    human = np.flatnonzero(world.human)
    home = world.add_ips(rng, world.country[human])
    office_key = pd.Series(world.team[human].astype(str)) + ":" + pd.Series(world.country[human])
    keys, office_of = np.unique(office_key.to_numpy(), return_inverse=True)
    office_countries = np.array([k.split(":")[1] for k in keys])
    offices = world.add_ips(rng, office_countries)[office_of]
    remote = rng.random(len(human)) < 0.2
    world.ip_table[human, 0] = np.where(remote, home, offices)
    world.ip_table[human, 1] = home
    world.ip_count[human] = 2
    world.ip_main_share[human] = np.where(remote, 1.0, rng.uniform(0.35, 0.85, len(human)))
    bots = world.people_of(BOT)
    pool = world.add_ips(rng, ["US"] * 24, datacenter=True)
    if len(bots):
        world.ip_table[bots] = np.stack([rng.choice(pool, 8, replace=False) for _ in bots])
        world.ip_count[bots] = 8
        world.ip_main_share[bots] = 1.0 / 8.0
    services = world.people_of(SERVICE)
    if len(services):
        world.ip_table[services, :2] = world.add_ips(rng, ["US"] * (2 * len(services)), datacenter=True).reshape(-1, 2)
        world.ip_count[services] = 2
        world.ip_main_share[services] = 0.5
