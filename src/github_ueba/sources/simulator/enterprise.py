"""The simulation run: world, cast, routine and scenarios drawn from one seed into a `SimulatedEnterprise`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from github_ueba.config import SimulatorSource
from github_ueba.sources.simulator.batches import EventBatch
from github_ueba.sources.simulator.casting import check_settings, membership_events, plan_cast
from github_ueba.sources.simulator.ndjson import write_ndjson
from github_ueba.sources.simulator.output import actors_frame, labels_frame, raw_table
from github_ueba.sources.simulator.routine import active_days, admin_routine_events, routine_events
from github_ueba.sources.simulator.scenarios import SCENARIO_FUNCTIONS
from github_ueba.sources.simulator.world import build_world


@dataclass
class SimulatedEnterprise:
    """A simulated audit log (`raw`, GitHub field names), its labels, and who is who (`actors`)."""

    raw: pa.Table
    labels: pd.DataFrame  # actor, day (UTC midnight, tz-naive), scenario ("benign_" prefix = look-alike)
    actors: pd.DataFrame  # actor, actor_id, role, team, maintainer, utc_offset, country, joined, left

    def write_ndjson(self, path: str | Path, omit_nulls: bool = True) -> Path:
        """Write the raw events as GitHub-export NDJSON (`.gz` suffix: gzip); see `write_ndjson`."""
        return write_ndjson(self.raw, path, omit_nulls=omit_nulls)


def simulate(cfg: SimulatorSource) -> SimulatedEnterprise:
    """Simulate the enterprise's audit log for `cfg.days` days ending at `cfg.end`; same seed, same table."""
    check_settings(cfg)
    world_rng, plan_rng, routine_rng, scenario_rng, id_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(5)
    )
    world = build_world(cfg, world_rng)
    plan = plan_cast(world, plan_rng)
    active = active_days(world, routine_rng)
    routine = EventBatch.concat([routine_events(world, routine_rng, active),
                                 admin_routine_events(world, routine_rng, active)])
    injected = membership_events(world, scenario_rng, plan)
    for inst in plan.instances:
        injected.extend(SCENARIO_FUNCTIONS[inst.kind](world, scenario_rng, inst))
    keep = (routine.ts >= world.t0_ms) & (routine.ts < world.end_ms)
    for repo, gone_after in injected.repo_cuts:
        keep &= ~((routine.repo == repo) & (routine.ts > gone_after))
    events = EventBatch.concat([routine.select(keep), *injected.events])
    return SimulatedEnterprise(
        raw=raw_table(world, id_rng, events, np.argsort(events.ts, kind="stable")),
        labels=labels_frame(world, injected.labelled),
        actors=actors_frame(world),
    )
