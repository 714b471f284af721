"""Assembly of the results: the raw GitHub-shaped Arrow table, the actor-day labels and the who-is-who frame."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from github_ueba.sources.simulator.batches import EventBatch
from github_ueba.sources.simulator.catalog import (
    ACTION_OP,
    ACTION_SCOPE,
    ACTIONS,
    DAY_MS,
    LABEL_PRIORITY,
    OPERATION_TYPES,
    PERMISSIONS,
    RAW_SCHEMA,
    ROLES,
    SCOPES,
    TOKEN_KINDS,
    TRANSPORTS,
    USER_AGENTS,
    VISIBILITIES,
)
from github_ueba.sources.simulator.world import World


def _document_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """`n` random 22-character base64url ids (128 random bits each), like GitHub's `_document_id`."""
    alphabet = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", np.uint8)
    words = np.frombuffer(rng.bytes(16 * n), np.uint64).reshape(n, 2)
    hi, lo = words[:, 0], words[:, 1]
    six = np.uint64(63)
    sextets = np.empty((22, n), np.uint8)
    for i in range(10):
        sextets[i] = (hi >> np.uint64(58 - 6 * i)) & six
        sextets[11 + i] = (lo >> np.uint64(56 - 6 * i)) & six
    sextets[10] = ((hi & np.uint64(15)) << np.uint64(2)) | (lo >> np.uint64(62))
    sextets[21] = (lo & np.uint64(3)) << np.uint64(4)
    chars = np.ascontiguousarray(alphabet[sextets].T)
    offsets = np.arange(0, 22 * (n + 1), 22, dtype=np.int64)
    array = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])
    return array.cast(pa.string())


_CHUNK_ROWS = 1 << 20  # rows per record batch; also fixes the order in which document ids are drawn


def _dictionary(values: Sequence[str] | np.ndarray) -> pa.Array:
    """An Arrow string array of vocabulary values, to take codes from."""
    return pa.array(np.asarray(values, dtype=object), type=pa.string())


def _take(dictionary: pa.Array, codes: np.ndarray) -> pa.Array:
    """Strings of `dictionary` at `codes` (-1 -> null), done in Arrow."""
    codes = codes.astype(np.int32)
    indices = pa.array(codes, mask=codes < 0) if (codes < 0).any() else pa.array(codes)
    return pc.take(dictionary, indices)


def raw_table(world: World, rng: np.random.Generator, events: EventBatch, order: np.ndarray) -> pa.Table:
    """Materialize the events in `order` as the raw GitHub-shaped Arrow table, one record batch per chunk.

    Working chunk by chunk keeps intermediates small, which matters more than arithmetic here.
    """
    vocab = {
        "action": _dictionary(ACTIONS), "names": _dictionary(world.names), "ips": _dictionary(world.ips),
        "country": _dictionary(world.ip_country), "org": _dictionary([world.cfg.org]),
        "repos": _dictionary(world.repos), "op": _dictionary(OPERATION_TYPES),
        "transport": _dictionary(TRANSPORTS), "token": _dictionary(TOKEN_KINDS), "ua": _dictionary(USER_AGENTS),
        "visibility": _dictionary(VISIBILITIES), "permission": _dictionary(PERMISSIONS),
    }
    business = pa.scalar(world.cfg.business, pa.string())
    enterprise_level = SCOPES.index("business")
    batches = []
    for start in range(0, len(order), _CHUNK_ROWS):
        chunk = events.select(order[start:start + _CHUNK_ROWS])
        n = len(chunk)
        ts = pa.array(chunk.ts, pa.int64())
        country = _take(vocab["country"], chunk.ip)
        columns = [
            ts, ts, _document_ids(rng, n),
            _take(vocab["action"], chunk.action),
            _take(vocab["names"], chunk.person),
            pa.array(world.actor_id[chunk.person], pa.int64()),
            _take(vocab["ips"], chunk.ip),
            pa.StructArray.from_arrays([country], fields=[pa.field("country_code", pa.string())]),
            _take(vocab["org"], np.where(ACTION_SCOPE[chunk.action] == enterprise_level, -1, 0)),
            _take(vocab["repos"], chunk.repo),
            _take(vocab["names"], chunk.user),
            _take(vocab["op"], ACTION_OP[chunk.action]),
            _take(vocab["transport"], chunk.transport),
            _take(vocab["token"], chunk.token),
            _take(vocab["ua"], chunk.ua),
            pa.repeat(business, n),
            _take(vocab["visibility"], chunk.visibility),
            _take(vocab["permission"], chunk.permission),
        ]
        batches.append(pa.RecordBatch.from_arrays(columns, schema=RAW_SCHEMA))
    return pa.Table.from_batches(batches, schema=RAW_SCHEMA)


def labels_frame(world: World, labelled: list[tuple[EventBatch, str]]) -> pd.DataFrame:
    """One row per labelled actor-day (UTC); on a shared actor-day an attack wins, then a one-person look-alike.

    A session crossing UTC midnight labels only the days holding at least a quarter of its events,
    so a single event spilling over midnight does not make a labelled day of its own.
    """
    columns = ["actor", "day", "scenario"]
    if not labelled:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "day" else object) for c in columns})
    parts = [pd.DataFrame({"batch": k, "person": b.person, "day": (b.ts - world.t0_ms) // DAY_MS, "scenario": s})
             for k, (b, s) in enumerate(labelled)]
    events = pd.concat(parts, ignore_index=True)
    per_day = events.groupby(["batch", "person", "day", "scenario"], as_index=False).size()
    share = per_day["size"] / per_day.groupby(["batch", "person"])["size"].transform("sum")
    frame = per_day.loc[share >= 0.25].copy()
    frame["priority"] = frame["scenario"].map(LABEL_PRIORITY)
    frame = frame.sort_values(["priority", "person", "day"], kind="stable").drop_duplicates(["person", "day"])
    days = pd.to_datetime(world.t0_ms + frame["day"].to_numpy() * DAY_MS, unit="ms").astype("datetime64[ns]")
    out = pd.DataFrame({"actor": world.names[frame["person"].to_numpy()].astype(object), "day": days,
                        "scenario": frame["scenario"].to_numpy().astype(object)})
    return out.sort_values(["day", "actor"], kind="stable").reset_index(drop=True)


def actors_frame(world: World) -> pd.DataFrame:
    """Who is who: role, team, maintainer, time zone, country, joining and leaving days."""
    people = np.arange(world.n_people)
    day0 = pd.Timestamp(world.t0_ms, unit="ms")
    joined = day0 + pd.to_timedelta(world.start_day, unit="D")
    left = day0 + pd.to_timedelta(world.end_day, unit="D")
    return pd.DataFrame({
        "actor": world.names[people].astype(object),
        "actor_id": world.actor_id,
        "role": np.asarray(ROLES, dtype=object)[world.role],
        "team": np.where(world.team >= 0, world.team_names[np.maximum(world.team, 0)], None).astype(object),
        "maintainer": world.maintainer,
        "utc_offset": world.offset,
        "country": world.country.astype(object),
        "joined": joined.where(world.start_day > 0),
        "left": left.where(world.end_day < world.days - 1),
    })
