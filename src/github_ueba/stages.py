"""One function per DVC stage: ingest → features → train → detect. Each reads config, writes its outs."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from github_ueba import duckdb_conn, io
from github_ueba.bots import mark_bots
from github_ueba.config import Config, FeaturesConfig
from github_ueba.errors import InputError
from github_ueba.window import Window, last_full_day, resolve

log = logging.getLogger(__name__)


def stage_dir(cfg: Config, stage: str) -> Path:
    """`<paths.data>/<stage>`."""
    return Path(cfg.paths.data) / stage


def model_path(cfg: Config) -> Path:
    """Where `train` writes the fitted detector."""
    return Path(cfg.paths.models) / "model.joblib"


def require(path: Path, produced_by: str) -> Path:
    """Fail with a clear message when an upstream output is missing."""
    if not path.exists():
        raise InputError(f"{path}: missing; run `github-ueba {produced_by}` (or `dvc repro`) first")
    return path


def read_window(cfg: Config) -> Window:
    """The window resolved by `ingest`."""
    return Window.from_dict(io.read_json(require(stage_dir(cfg, "ingest") / "window.json", "ingest")))


# --------------------------------------------------------------------------------------- ingest


def _events_per_day(events_path: Path) -> pd.Series:
    """Normalized events per UTC day (one scan of events.parquet), indexed by date."""
    with duckdb_conn.connect() as con:
        per_day = con.execute(
            """SELECT CAST(to_timestamp(timestamp / 1000) AT TIME ZONE 'UTC' AS DATE) AS day, count(*) AS n
               FROM read_parquet(?) GROUP BY ALL""",
            [str(events_path)],
        ).df()
    return pd.Series(per_day["n"].to_numpy(), index=pd.to_datetime(per_day["day"]).dt.date, dtype="int64")


def _event_quality(per_day: pd.Series, window: Window) -> dict[str, Any]:
    """Coverage of the window by the normalized events."""
    days = pd.date_range(window.start, window.end, freq="D").date
    in_window = per_day[per_day.index.isin(days)]
    missing = [d.isoformat() for d in sorted(set(days) - set(in_window.index))]
    return {
        "events_normalized": int(per_day.sum()),
        "events_in_window": int(in_window.sum()),
        "events_outside_window": int(per_day.sum() - in_window.sum()),
        "days_in_window": len(days),
        "days_covered": len(days) - len(missing),
        "days_missing": missing,
    }


def _ingest_events(cfg: Config, out: Path) -> tuple[dict[str, Any], dt.date | None]:
    """Write events.parquet (+ rejected.ndjson, labels.csv) from a local source; return counts and the
    source's own last day (None for exports: their latest event decides)."""
    src = cfg.source
    events_path = out / "events.parquet"
    if src.name == "simulator":
        from github_ueba.sources.normalize import normalize_arrow
        from github_ueba.sources.simulator import simulate

        sim = simulate(src)
        counts = normalize_arrow(sim.raw, "simulator", events_path, out / "rejected.ndjson")
        labels = sim.labels.assign(day=pd.to_datetime(sim.labels["day"]).dt.strftime("%Y-%m-%d"))
        io.write_csv(labels[["actor", "day", "scenario"]], out / "labels.csv")
        return counts, dt.date.fromisoformat(src.end)
    from github_ueba.sources.files import read_exports_to

    counts = read_exports_to(src.path, events_path, out / "rejected.ndjson")
    if counts.get("records_read") and counts.get("rejected", 0) > src.max_rejected_share * counts["records_read"]:
        raise InputError(
            f"{src.path}: {counts['rejected']} of {counts['records_read']} records rejected "
            f"(more than source.max_rejected_share={src.max_rejected_share}); see {out / 'rejected.ndjson'}"
        )
    return counts, None


def ingest(cfg: Config) -> dict[str, Any]:
    """Read the source, compute base features per actor-day with the kql/ functions, write quality."""
    started = time.perf_counter()
    out = stage_dir(cfg, "ingest")
    out.mkdir(parents=True, exist_ok=True)
    quality: dict[str, Any] = {"source": cfg.source.name}
    if cfg.source.name == "log_analytics":
        from github_ueba.sources.log_analytics import LogAnalyticsFeatureSource

        window = resolve(cfg.window, last_full_day(None))
        la = LogAnalyticsFeatureSource(cfg.source, cfg.features)
        base = la.fetch_base_features(window.start, window.end_exclusive, window.start)
    else:
        from github_ueba.features.base import base_features

        counts, source_end = _ingest_events(cfg, out)
        quality.update(counts)
        per_day = _events_per_day(out / "events.parquet")
        window = resolve(cfg.window, source_end or last_full_day(per_day.index.max() if len(per_day) else None))
        quality.update(_event_quality(per_day, window))
        base = base_features(out / "events.parquet", window.start, window.end_exclusive, window.start, cfg.features)
    if base.empty:
        raise InputError(
            f"no audit events between {window.start} and {window.end} (window.end / window.lookback_days) "
            f"in source '{cfg.source.name}'"
        )
    base["is_bot"] = mark_bots(base, cfg.features.bot_patterns, cfg.features.deploy_key_share).to_numpy()
    quality.update(
        {
            "window": window.to_dict(),
            "actor_days": int(len(base)),
            "actors": int(base["actor"].nunique()),
            "bots": int(base.loc[base["is_bot"], "actor"].nunique()),
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    io.write_parquet(base, out / "base_features.parquet")
    io.write_json(window.to_dict(), out / "window.json")
    io.write_json(quality, out / "quality.json")
    log.info("ingest: %d actor-days, %d actors, window %s..%s", len(base), quality["actors"], window.start, window.end)
    return quality


# ------------------------------------------------------------------------------------- features


def features(cfg: Config) -> dict[str, Any]:
    """Add per-actor behaviour features (trailing baselines, z-scores, history depth)."""
    started = time.perf_counter()
    base = pd.read_parquet(require(stage_dir(cfg, "ingest") / "base_features.parquet", "ingest"))
    table = build_features(base, cfg.features)
    out = stage_dir(cfg, "features")
    io.write_parquet(table, out / "features.parquet")
    summary = {
        "rows": int(len(table)),
        "columns": int(table.shape[1]),
        "seconds": round(time.perf_counter() - started, 2),
    }
    io.write_json(summary, out / "summary.json")
    return summary


def build_features(base: pd.DataFrame, settings: FeaturesConfig) -> pd.DataFrame:
    """Behaviour features on the base table; bot rows dropped when `features.bots=drop`."""
    from github_ueba.features.behaviour import behaviour_features

    table = behaviour_features(base, settings)
    if settings.bots == "drop":
        table = table.loc[~table["is_bot"]].reset_index(drop=True)
    return table


def load_features(cfg: Config) -> pd.DataFrame:
    """The features table written by the `features` stage."""
    return pd.read_parquet(require(stage_dir(cfg, "features") / "features.parquet", "features"))


# ---------------------------------------------------------------------------------------- train


def fit_detector(cfg: Config, table: pd.DataFrame, before: dt.date) -> tuple[Any, pd.DataFrame]:
    """Fit the configured detector on rows before `before`; return it and the training rows."""
    from github_ueba.feature_sets import columns_for
    from github_ueba.model import ActorDayDetector, training_rows

    rows = training_rows(table, pd.Timestamp(before), cfg.features.min_history_days, cfg.model.train_on_bots)
    detector = ActorDayDetector.from_config(cfg.model, columns_for(cfg.model.feature_set))
    detector.fit(rows)
    return detector, rows


def train(cfg: Config) -> dict[str, Any]:
    """Fit the IsolationForest pipeline on the days before the detect window."""
    started = time.perf_counter()
    window = read_window(cfg)
    table = load_features(cfg)
    detector, rows = fit_detector(cfg, table, window.detect_start)
    scores = detector.anomaly_score(rows)
    metrics = {
        "train_rows": int(len(rows)),
        "train_actors": int(rows["actor"].nunique()),
        "train_days": int(rows["day"].nunique()),
        "n_features": int(len(detector.feature_names_in_)),
        "score_p50": float(np.quantile(scores, 0.5)),
        "score_p99": float(np.quantile(scores, 0.99)),
        "score_max": float(scores.max()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    path = model_path(cfg)
    with io.atomic_path(path) as tmp:
        joblib.dump(detector, tmp)
    io.write_json(metrics, stage_dir(cfg, "train") / "metrics.json")
    from github_ueba import tracking

    tracking.log_train(cfg, detector, rows, metrics, scores=scores)
    return metrics


# --------------------------------------------------------------------------------------- detect


def score_rows(cfg: Config, detector: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """Score actor-days, flag them by the threshold policy, and attach reasons to the flagged ones."""
    from github_ueba.explain import reasons
    from github_ueba.model import flag

    decision = detector.decision_function(rows)
    scored = rows.assign(anomaly_score=-decision)
    scored["is_anomaly"] = flag(scored[["actor", "day", "anomaly_score"]], decision, cfg.model.threshold, detector)
    scored["reasons"] = ""
    flagged = scored["is_anomaly"].to_numpy()
    if flagged.any():
        scored.loc[flagged, "reasons"] = reasons(detector, scored.loc[flagged])
    return scored


def detect_rows(table: pd.DataFrame, window: Window) -> pd.DataFrame:
    """The actor-days of the detect window (a clear error when there are none)."""
    rows = table.loc[table["day"] >= pd.Timestamp(window.detect_start)].reset_index(drop=True)
    if rows.empty:
        raise InputError(f"no actor-days in the detect window {window.detect_start}..{window.end} (window.detect_days)")
    return rows


def labelled(cfg: Config) -> pd.DataFrame | None:
    """The simulator's labels (`actor, day, scenario`), or None for sources without labels."""
    path = stage_dir(cfg, "ingest") / "labels.csv"
    if not path.exists():
        return None
    labels = pd.read_csv(path)
    labels["day"] = pd.to_datetime(labels["day"])
    return labels


KEY_COLUMNS = ["git_clone", "repo_download", "new_repos", "first_seen_ips", "first_seen_countries"]


def detect(cfg: Config) -> dict[str, Any]:
    """Score every actor-day of the detect window; write scores, ranked anomalies, metrics, plots."""
    from github_ueba.evaluate import detection_metrics

    started = time.perf_counter()
    window = read_window(cfg)
    detector = joblib.load(require(model_path(cfg), "train"))
    table = load_features(cfg)
    scored = score_rows(cfg, detector, detect_rows(table, window))
    out = stage_dir(cfg, "detect")
    scores = scored[["actor", "day", "anomaly_score", "is_anomaly"]].copy()
    scores["day"] = scores["day"].dt.strftime("%Y-%m-%d")
    io.write_csv(scores, out / "scores.csv")
    anomalies = scored.loc[scored["is_anomaly"]].sort_values("anomaly_score", ascending=False)
    anomalies = anomalies.assign(rank=np.arange(1, len(anomalies) + 1), day=anomalies["day"].dt.strftime("%Y-%m-%d"))
    keep = ["rank", "actor", "day", "anomaly_score", "reasons", "is_bot"] + [c for c in KEY_COLUMNS if c in anomalies]
    io.write_csv(anomalies[keep], out / "anomalies.csv")
    metrics: dict[str, Any] = {
        "n_scored": int(len(scored)),
        "n_flagged": int(scored["is_anomaly"].sum()),
        "score_p50": float(scored["anomaly_score"].quantile(0.5)),
        "score_p99": float(scored["anomaly_score"].quantile(0.99)),
    }
    labels = labelled(cfg)
    if labels is not None:
        metrics.update(detection_metrics(scored[["actor", "day", "anomaly_score", "is_anomaly"]], labels))
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    _write_plots(scored, out / "plots")
    io.write_json(metrics, out / "metrics.json")
    from github_ueba import tracking
    from github_ueba.report import write_report

    write_report(cfg, out, scored, metrics, history=table)
    tracking.log_detect(cfg, out, metrics)
    return metrics


def _write_plots(scored: pd.DataFrame, out: Path) -> None:
    """Plot data DVC renders: the score distribution and anomalies per day."""
    counts, edges = np.histogram(scored["anomaly_score"], bins=40)
    io.write_csv(pd.DataFrame({"score": np.round((edges[:-1] + edges[1:]) / 2, 4), "actor_days": counts}),
                 out / "score_distribution.csv")
    per_day = scored.groupby(scored["day"].dt.strftime("%Y-%m-%d"))["is_anomaly"].agg(["sum", "size"])
    per_day = per_day.rename(columns={"sum": "anomalies", "size": "actor_days"}).reset_index()
    io.write_csv(per_day, out / "anomalies_per_day.csv")
