"""`github-ueba explain ACTOR DAY` (analyst.explain) on a real tiny pipeline run."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pandas as pd
import pytest

from github_ueba import analyst
from github_ueba.config import load
from github_ueba.errors import InputError



@pytest.fixture(scope="module")
def run(tiny_run):
    """The tiny pipeline run of this session: (config, data dir)."""
    return tiny_run


def _top_anomaly(data) -> pd.Series:
    anomalies = pd.read_csv(data / "detect" / "anomalies.csv", dtype={"actor": str}, keep_default_na=False)
    return anomalies.iloc[0]


def test_explain_a_flagged_actor_day(run):
    cfg, data = run
    top = _top_anomaly(data)
    day = dt.date.fromisoformat(top["day"])
    text = analyst.explain(cfg, top["actor"], day)
    assert text.startswith(f"{top['actor']} on {day}")
    assert f"anomaly score {top['anomaly_score']:.3f}: rank 1 of " in text
    assert "FLAGGED" in text
    assert "Features today vs the actor's baseline" in text
    assert all(column in text for column in ("today", "mean", "std", "z", "first seen today"))
    assert "Top contributing features" in text and "%" in text
    start = int(pd.Timestamp(day, tz="UTC").timestamp() * 1000)
    actions = duckdb.execute(
        "SELECT DISTINCT action FROM read_parquet(?) WHERE actor = ? AND timestamp >= ? AND timestamp < ?",
        [str(data / "ingest" / "events.parquet"), top["actor"], start, start + 86_400_000],
    ).df()["action"]
    assert len(actions) > 0
    assert all(action in text for action in actions)
    assert max(len(line) for line in text.split("Audit events on")[1].splitlines()) <= analyst.WIDTH


def test_rank_counts_the_actor_days_of_that_day(run):
    cfg, data = run
    top = _top_anomaly(data)
    scores = pd.read_csv(data / "detect" / "scores.csv", dtype={"actor": str}, keep_default_na=False)
    same_day = scores.loc[scores["day"] == top["day"]].sort_values("anomaly_score")
    quiet = same_day.iloc[0]
    text = analyst.explain(cfg, quiet["actor"], dt.date.fromisoformat(quiet["day"]))
    assert f"rank {len(same_day)} of {len(same_day)} actor-days" in text
    assert "not flagged" in text


def test_unknown_actor_is_named(run):
    cfg, data = run
    top = _top_anomaly(data)
    with pytest.raises(InputError, match="no-such-actor"):
        analyst.explain(cfg, "no-such-actor", dt.date.fromisoformat(top["day"]))


def test_day_outside_the_window_names_the_window(run):
    cfg, data = run
    window = json.loads((data / "ingest" / "window.json").read_text())
    late = dt.date.fromisoformat(window["end"]) + dt.timedelta(days=3)
    with pytest.raises(InputError, match=f"outside the ingested window {window['start']}..{window['end']}"):
        analyst.explain(cfg, _top_anomaly(data)["actor"], late)


def test_inactive_day_names_the_nearby_active_days(run):
    cfg, data = run
    features = pd.read_parquet(data / "features" / "features.parquet", columns=["actor", "day"])
    window = json.loads((data / "ingest" / "window.json").read_text())
    all_days = pd.date_range(window["start"], window["end"], freq="D")
    active = features.groupby("actor")["day"].agg(set)
    actor = next(a for a, days in active.items() if 3 < len(days) < len(all_days) - 2)
    gap = next(d for d in all_days[1:] if d not in active[actor] and min(active[actor]) < d)
    with pytest.raises(InputError, match=r"nearest active days before: \d{4}-\d\d-\d\d"):
        analyst.explain(cfg, actor, gap.date())


def test_log_analytics_source_prints_the_workspace_query(run):
    cfg, data = run
    top = _top_anomaly(data)
    la_cfg = load(["source=log_analytics", f"paths.data={data}", f"paths.models={data}/models",
                   "tracking.enabled=false"])
    text = analyst.explain(la_cfg, top["actor"], dt.date.fromisoformat(top["day"]))
    assert "Log Analytics workspace" in text
    assert f"| where actor == '{top['actor']}'" in text
    assert "summarize events = count()" in text


def test_kql_literal_escapes_quotes_and_backslashes():
    assert analyst.kql_literal("o'neil\\x") == "'o\\'neil\\\\x'"
    query = analyst.workspace_query(load(["source=log_analytics"]), "a' or 1==1 //", dt.date(2026, 1, 2))
    assert "actor == 'a\\' or 1==1 //'" in query
    assert "timestamp >= 1767312000000 and timestamp < 1767398400000" in query
