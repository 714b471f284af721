"""Casting: check the settings, choose who plays each scenario instance when, and hire and remove people."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from github_ueba.config import ConfigError, SimulatorSource
from github_ueba.sources.simulator.batches import Injection
from github_ueba.sources.simulator.catalog import ADMIN, ATTACK_SCENARIOS, DEVELOPER
from github_ueba.sources.simulator.scenarios import Instance
from github_ueba.sources.simulator.scripted import scripted, work_hours, working_day
from github_ueba.sources.simulator.world import World


@dataclass
class Plan:
    """Scenario instances plus the hires and leavers of the window."""

    instances: list[Instance]
    hires: np.ndarray
    leavers: np.ndarray


def check_settings(cfg: SimulatorSource) -> None:
    """Fail early, naming the key, when the settings cannot make the enterprise asked for."""
    try:
        dt.date.fromisoformat(cfg.end)
    except ValueError:
        raise ConfigError(f"source.end={cfg.end!r}: expected a date YYYY-MM-DD") from None
    a, b = cfg.attacks_per_scenario, cfg.benign_per_scenario
    minimums = {
        "attack_days": 10, "days": cfg.attack_days + 14, "n_teams": 2, "repos_per_team": 2, "n_admins": max(1, a),
        "n_developers": 2 * cfg.n_teams, "attacks_per_scenario": 0, "benign_per_scenario": 0, "hires": 0,
        "leavers": 0, "n_bots": 0, "n_service_accounts": 0,
    }
    for key, low in minimums.items():
        if getattr(cfg, key) < low:
            raise ConfigError(f"source.{key}={getattr(cfg, key)}: expected >= {low}")
    needed = cfg.n_teams + 6 * a + b + cfg.hires + cfg.leavers
    if cfg.n_developers < needed:
        raise ConfigError(
            f"source.n_developers={cfg.n_developers}: expected >= {needed} (one maintainer per team plus distinct "
            f"developers for 6 x attacks_per_scenario, benign_per_scenario, hires and leavers)"
        )


def _slot_day(rng: np.random.Generator, first: int, stop: int, i: int, n: int) -> int:
    """A day in the i-th of n equal slices of [first, stop): instances spread over the attack span, the last
    slice ending the window, so every kind has an instance in the most recent days (the detect window)."""
    lo = first + (stop - first) * i // n
    hi = max(first + (stop - first) * (i + 1) // n, lo + 1)
    return int(rng.integers(lo, hi))


def plan_cast(world: World, rng: np.random.Generator) -> Plan:
    """Choose distinct actors and days for every instance; set hires', leavers' and quitters' dates."""
    cfg, days = world.cfg, world.days
    a, b = cfg.attacks_per_scenario, cfg.benign_per_scenario
    first = days - cfg.attack_days
    pool = iter(rng.permutation(np.flatnonzero((world.role == DEVELOPER) & ~world.maintainer)).tolist())
    instances: list[Instance] = []
    developer_kinds = [k for k in ATTACK_SCENARIOS if k != "admin_abuse"]
    for kind in developer_kinds:
        for i in range(a):
            person = next(pool)
            if kind == "mass_clone_before_leaving":
                span = int(rng.integers(1, 3))
                day = _slot_day(rng, first, days - 7, i, a)
                removal = day + span - 1 + int(rng.integers(2, 6))
                world.end_day[person] = removal - 2  # a clear day between the last work and the removal
                instances.append(Instance(kind, person, day, span, removal))
            elif kind == "slow_access_widening":
                length = min(int(rng.integers(8, 13)), cfg.attack_days - 2)
                instances.append(Instance(kind, person, _slot_day(rng, first, days - length, i, a), length, i))
            else:
                instances.append(Instance(kind, person, _slot_day(rng, first, days - 1, i, a), 1, i))
    admins = rng.permutation(world.people_of(ADMIN))
    for i in range(a):
        instances.append(Instance("admin_abuse", int(admins[i]), _slot_day(rng, first, days - 1, i, a), 1, i))
    reviewers = np.concatenate([admins[a:], admins[:a]])
    teams = rng.permutation(cfg.n_teams)
    for i in range(b):
        source = int(teams[i % cfg.n_teams])
        target = int((source + 1 + rng.integers(0, cfg.n_teams - 1)) % cfg.n_teams)
        migration_day = working_day(world, rng, first, days - 2)
        instances.append(Instance("benign_team_migration", source, migration_day, 1, target))
        instances.append(Instance("benign_admin_review", int(reviewers[i % len(reviewers)]),
                                  working_day(world, rng, first, days - 2)))
        instances.append(Instance("benign_new_laptop", next(pool), working_day(world, rng, first, days - 2)))
    hires = np.array([next(pool) for _ in range(cfg.hires)], dtype=np.int64)
    world.start_day[hires] = rng.integers(days // 5, max(days // 5 + 1, days * 3 // 4), len(hires))
    leavers = np.array([next(pool) for _ in range(cfg.leavers)], dtype=np.int64)
    world.end_day[leavers] = rng.integers(days // 3, days - 6, len(leavers))
    return Plan(instances, hires, leavers)


def membership_events(world: World, rng: np.random.Generator, plan: Plan) -> Injection:
    """Admins add each hire (who clones the team's repos on day one) and remove each leaver and quitter."""
    out = Injection()
    admins = world.people_of(ADMIN)
    for hire in plan.hires.tolist():
        admin = int(rng.choice(admins))
        start = int(world.start_day[hire])
        day = max(start - int(rng.integers(2, 5)), 0)
        out.add(scripted(world, admin, day, work_hours(world, rng, admin, 2), ["org.add_member", "team.add_member"],
                         users=hire, permission=["read", -1]))
        repos = world.team_repos(int(world.team[hire]))
        out.add(scripted(world, hire, start, work_hours(world, rng, hire, len(repos)), "git.clone", repos))
    for leaver in plan.leavers.tolist():
        admin = int(rng.choice(admins))
        day = min(int(world.end_day[leaver]) + int(rng.integers(2, 6)), world.days - 1)
        out.add(scripted(world, admin, day, work_hours(world, rng, admin, 1), "org.remove_member", users=leaver))
    return out
