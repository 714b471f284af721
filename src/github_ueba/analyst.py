"""`github-ueba explain ACTOR DAY`: everything an analyst needs to judge one actor-day, as text:
the day's features beside the actor's baseline, the score and its rank that day, the features
that drove the score, and the raw audit events of the day grouped by action.
"""

from __future__ import annotations

import datetime as dt
import difflib
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from github_ueba.config import Config
from github_ueba.duckdb_conn import connect
from github_ueba.errors import InputError

WIDTH = 100
#: Nearby active days named when the asked day has no activity.
NEARBY_DAYS = 5
#: Example values listed per action (repos, IPs, countries).
EXAMPLES = 3
FIRST_SEEN = ("first_seen_ips", "first_seen_countries", "first_seen_repos", "first_seen_actions")


# ------------------------------------------------------------------------------------- lookup


def _check_day(cfg: Config, day: dt.date) -> Any:
    from github_ueba.stages import read_window

    window = read_window(cfg)
    if not window.start <= day <= window.end:
        raise InputError(
            f"day {day}: outside the ingested window {window.start}..{window.end} "
            f"(detect window {window.detect_start}..{window.end}); pick a day inside it or re-run ingest "
            f"with window.end / window.lookback_days"
        )
    return window


def actor_day_row(table: pd.DataFrame, actor: str, day: dt.date) -> pd.DataFrame:
    """The features row of (actor, day); InputError naming close actors or the actor's nearby days."""
    own = table.loc[table["actor"] == actor]
    if own.empty:
        close = difflib.get_close_matches(actor, table["actor"].astype(str).unique().tolist(), n=5)
        hint = f"; similar names: {', '.join(close)}" if close else ""
        raise InputError(
            f"actor {actor!r}: not in the features table ({table['actor'].nunique()} actors in the window){hint}"
        )
    target = pd.Timestamp(day)
    row = own.loc[own["day"] == target]
    if row.empty:
        days = own["day"].sort_values()
        before = days.loc[days < target].tail(NEARBY_DAYS).dt.strftime("%Y-%m-%d").tolist()
        after = days.loc[days > target].head(NEARBY_DAYS).dt.strftime("%Y-%m-%d").tolist()
        raise InputError(
            f"actor {actor!r} has no audit events on {day} ({len(days)} active days in the window); "
            f"nearest active days before: {', '.join(before) or 'none'}; after: {', '.join(after) or 'none'}"
        )
    return row.reset_index(drop=True)


# ------------------------------------------------------------------------------------- sections


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return "-"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.2f}"
    return str(value)


def baseline_table(row: pd.Series) -> str:
    """Count features active that day or in the baseline: value, baseline mean/std, z (largest z first)."""
    from github_ueba.features.behaviour import COUNT_FEATURES

    features = [f for f in COUNT_FEATURES if f in row.index and f"{f}_z" in row.index]
    frame = pd.DataFrame(
        {
            "feature": features,
            "today": [row[f] for f in features],
            "mean": [row.get(f"{f}_mean", np.nan) for f in features],
            "std": [row.get(f"{f}_std", np.nan) for f in features],
            "z": [row[f"{f}_z"] for f in features],
        }
    )
    frame = frame.loc[(frame["today"] > 0) | (frame["mean"].fillna(0) > 0)]
    frame = frame.sort_values(["z", "today"], ascending=False, kind="stable")
    lines = [f"  {'feature':<26} {'today':>8} {'mean':>8} {'std':>8} {'z':>8}"]
    lines += [
        f"  {r.feature:<26} {_fmt(r.today):>8} {_fmt(r.mean):>8} {_fmt(r.std):>8} {_fmt(r.z):>8}"
        for r in frame.itertuples(index=False)
    ]
    return "\n".join(lines)


def _history_line(row: pd.Series) -> str:
    keys = ["history_days", "baseline_span_days", "days_since_last_active", "has_baseline", "novel_features"]
    return "  " + ", ".join(f"{k} {_fmt(row[k])}" for k in keys if k in row.index)


def _first_seen_line(row: pd.Series) -> str:
    parts = [f"{f.removeprefix('first_seen_')} {_fmt(row[f])}" for f in FIRST_SEEN if f in row.index]
    return "  first seen today: " + (", ".join(parts) if parts else "n/a")


def score_day(cfg: Config, detector: Any, day_rows: pd.DataFrame, actor: str) -> dict[str, Any]:
    """Score all actor-days of one day with the model; the actor's score, rank, flag and reasons."""
    from github_ueba.explain import reasons
    from github_ueba.stages import score_rows

    scored = score_rows(cfg, detector, day_rows)
    mine = scored.loc[scored["actor"] == actor].iloc[0]
    rank = int((scored["anomaly_score"] > mine["anomaly_score"]).sum()) + 1
    why = mine["reasons"] or reasons(detector, scored.loc[scored["actor"] == actor])[0]
    return {
        "score": float(mine["anomaly_score"]),
        "rank": rank,
        "of": int(len(scored)),
        "flagged": bool(mine["is_anomaly"]),
        "reasons": str(why),
        "n_flagged": int(scored["is_anomaly"].sum()),
    }


def contributions_lines(detector: Any, row: pd.DataFrame, top: int = 8) -> list[str]:
    """The features with the largest share of the row's score (path attribution), largest first."""
    from github_ueba.explain import top_contributions

    shares = top_contributions(detector, row)
    series = shares.iloc[0].astype(float).sort_values(ascending=False).head(top)
    series = series.loc[series > 0]
    return [f"  {name:<34} {share:6.1%}" for name, share in series.items()]


# ------------------------------------------------------------------------------------- events


def _day_ms(day: dt.date) -> tuple[int, int]:
    start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
    return int(start.timestamp() * 1000), int((start + dt.timedelta(days=1)).timestamp() * 1000)


def events_by_action(events_path: Path, actor: str, day: dt.date) -> pd.DataFrame:
    """The actor's audit events of the UTC day grouped by action: count, repos, IPs, countries, hours."""
    start_ms, end_ms = _day_ms(day)
    query = """
        SELECT action,
               count(*) AS events,
               count(DISTINCT repo) AS n_repos,
               list_sort(list_distinct(list(repo)))[1:$examples] AS repos,
               count(DISTINCT actor_ip) AS n_ips,
               list_sort(list_distinct(list(actor_ip)))[1:$examples] AS ips,
               list_sort(list_distinct(list(country_code))) AS countries,
               list_sort(list_distinct(list(CAST((timestamp // 3600000) % 24 AS INTEGER)))) AS hours
        FROM read_parquet($path)
        WHERE actor = $actor AND timestamp >= $start AND timestamp < $end
        GROUP BY action
        ORDER BY events DESC, action
    """
    params = {"path": str(events_path), "actor": actor, "start": start_ms, "end": end_ms, "examples": EXAMPLES}
    with connect() as con:
        return con.execute(query, params).df()


def _listed(values: Any, total: int | None = None) -> str:
    """Comma-joined values, prefixed by the distinct count (and "…" when more exist) when given."""
    items = [str(v) for v in (values if values is not None else []) if v is not None and str(v) != ""]
    text = ", ".join(items) or "-"
    if total is None:
        return text
    return f"{total}: {text}{'…' if total > len(items) else ''}"


def _wrapped(text: str, indent: int) -> list[str]:
    return textwrap.wrap(text, width=WIDTH, initial_indent=" " * indent, subsequent_indent=" " * (indent + 4),
                         break_on_hyphens=False) or [""]


def events_lines(events: pd.DataFrame) -> list[str]:
    """Grouped events as text: one line per action, its repos, IPs, countries and hours wrapped below."""
    if events.empty:
        return ["  no audit events of this actor on this day in events.parquet"]
    lines: list[str] = []
    for r in events.itertuples(index=False):
        lines.extend(_wrapped(f"{r.action}: {int(r.events)} events", 2))
        lines.extend(_wrapped(f"repos {_listed(r.repos, int(r.n_repos))}", 6))
        lines.extend(_wrapped(
            f"IPs {_listed(r.ips, int(r.n_ips))}; countries {_listed(r.countries)}; UTC hours {_listed(r.hours)}", 6
        ))
    return lines


def kql_literal(text: str) -> str:
    """`text` as a single-quoted KQL string literal (backslash, quote and line breaks escaped)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def workspace_query(cfg: Config, actor: str, day: dt.date) -> str:
    """The KQL that lists the actor's events of the day by action in the Log Analytics workspace."""
    from github_ueba.config import LogAnalyticsSource
    from github_ueba.events import KQL_TABLE
    from github_ueba.sources.la_presets import prelude

    source = cfg.source if isinstance(cfg.source, LogAnalyticsSource) else LogAnalyticsSource()
    start_ms, end_ms = _day_ms(day)
    return (
        f"{prelude(source.preset, source.table, source.columns)}\n"
        f"{KQL_TABLE}\n"
        f"| where actor == {kql_literal(actor)} and timestamp >= {start_ms} and timestamp < {end_ms}\n"
        "| extend hour = hourofday(datetime_add('millisecond', timestamp, datetime(1970-01-01)))\n"
        "| summarize events = count(), repos = make_set(repo, 20), ips = make_set(actor_ip, 20),\n"
        "    countries = make_set(country_code), hours = make_set(hour) by action\n"
        "| order by events desc"
    )


# ------------------------------------------------------------------------------------- command


def explain(cfg: Config, actor: str, day: dt.date) -> str:
    """The analyst's view of one actor-day as text (see module doc); InputError for unknown actor/day."""
    import joblib

    from github_ueba.stages import load_features, model_path, require, stage_dir

    window = _check_day(cfg, day)
    table = load_features(cfg)
    row_frame = actor_day_row(table, actor, day)
    row = row_frame.iloc[0]
    detector = joblib.load(require(model_path(cfg), "train"))
    day_rows = table.loc[table["day"] == pd.Timestamp(day)].reset_index(drop=True)
    score = score_day(cfg, detector, day_rows, actor)
    period = "detect window" if day >= window.detect_start else "training/validation period (before detect window)"
    verdict = "FLAGGED" if score["flagged"] else "not flagged"
    lines = [
        f"{actor} on {day} ({period}){' [bot]' if bool(row.get('is_bot', False)) else ''}",
        "=" * min(WIDTH, max(20, len(actor) + 14)),
        f"anomaly score {score['score']:.3f}: rank {score['rank']} of {score['of']} actor-days that day",
        f"{verdict} (threshold policy {cfg.model.threshold.policy}; {score['n_flagged']} flagged that day)",
        "",
        "Reasons:",
        *_wrapped(score["reasons"] or "-", 2),
        "",
        f"Features today vs the actor's baseline (last {cfg.features.baseline_days} days):",
        baseline_table(row),
        _first_seen_line(row),
        _history_line(row),
        "",
        "Top contributing features (share of the isolation-path attribution):",
        *(contributions_lines(detector, row_frame) or ["  none"]),
        "",
        f"Audit events on {day} (UTC) by action:",
    ]
    events_path = stage_dir(cfg, "ingest") / "events.parquet"
    if cfg.source.name == "log_analytics" or not events_path.exists():
        lines.append("  the raw events are in the Log Analytics workspace; run this query there:")
        lines.append(workspace_query(cfg, actor, day))
    else:
        lines.extend(events_lines(events_by_action(events_path, actor, day)))
    return "\n".join(lines)
