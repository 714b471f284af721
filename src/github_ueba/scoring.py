"""`github-ueba score`: score given days with the promoted model and write one CSV per day.

Features come from `<data>/features/features.parquet` when it already covers every requested day
(the pipeline's own table, same history); otherwise the `ingest` and `features` stages run again
into `<data>/score/work` with a window that ends on the last requested day and reads the configured
`window.lookback_days` of history before it, so each day's behaviour features see the actor's
past exactly as in training. Works without DVC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from github_ueba import io
from github_ueba.config import Config, PathsConfig, WindowConfig
from github_ueba.errors import InputError

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["actor", "day", "anomaly_score", "is_anomaly", "reasons"]


def score_dir(cfg: Config) -> Path:
    """`<paths.data>/score`: one `<day>.csv` per scored day, and the `work/` feature build."""
    return Path(cfg.paths.data) / "score"


def _covers(table: pd.DataFrame, days: list[dt.date]) -> bool:
    """Whether the features table's day range includes every requested day."""
    return bool(table["day"].min() <= pd.Timestamp(min(days)) and pd.Timestamp(max(days)) <= table["day"].max())


def work_config(cfg: Config, days: list[dt.date] | None) -> Config:
    """The config for rebuilding features in `<data>/score/work`: window ends on the last day asked for."""
    span = (max(days) - min(days)).days + 1 if days else 1
    lookback = max(cfg.window.lookback_days, span + cfg.features.baseline_days + 1)
    window = WindowConfig(
        end=max(days).isoformat() if days else cfg.window.end,
        lookback_days=lookback,
        detect_days=span,
        validation_days=0,
    )
    paths = PathsConfig(data=str(score_dir(cfg) / "work"), models=cfg.paths.models)
    return dataclasses.replace(cfg, window=window, paths=paths)


def features_for(cfg: Config, days: list[dt.date] | None) -> tuple[pd.DataFrame, list[dt.date]]:
    """The features table holding the requested days (default: the source's last full day), and the days."""
    from github_ueba import stages

    existing = stages.stage_dir(cfg, "features") / "features.parquet"
    if days and existing.exists():
        table = stages.load_features(cfg)
        if _covers(table, days):
            log.info("score: reusing %s", existing)
            return table, days
    work = work_config(cfg, days)
    log.info("score: computing features into %s (window ending %s)", work.paths.data, work.window.end or "latest")
    stages.ingest(work)
    stages.features(work)
    return stages.load_features(work), days or [stages.read_window(work).end]


def score_frame(cfg: Config, pyfunc_model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """Score feature rows with the pyfunc's detector, flagged by the model's stored threshold policy, with reasons."""
    from github_ueba.serving import threshold_from_spec
    from github_ueba.stages import score_rows

    wrapper = pyfunc_model.unwrap_python_model()
    model = dataclasses.replace(cfg.model, threshold=threshold_from_spec(wrapper.spec))
    return score_rows(dataclasses.replace(cfg, model=model), wrapper.detector, rows.reset_index(drop=True))


def score(cfg: Config, model_uri: str | None = None, days: list[dt.date] | None = None) -> list[Path]:
    """Score the actor-days of `days` with `model_uri` (default: the champion); write `<data>/score/<day>.csv`.

    `is_anomaly` applies the threshold policy stored with the model (a `budget` is per scored day).
    """
    from github_ueba.tracking import load_champion

    pyfunc_model = load_champion(cfg, model_uri)
    table, days = features_for(cfg, sorted(set(days)) if days else None)
    wanted = pd.DatetimeIndex([pd.Timestamp(d) for d in days])
    rows = table.loc[table["day"].isin(wanted)]
    empty = sorted(set(wanted.date) - set(rows["day"].dt.date))
    if empty:
        raise InputError(
            f"no actor-days on {', '.join(d.isoformat() for d in empty)} in source '{cfg.source.name}' "
            "(no audit events those days, or outside the source's data)"
        )
    scored = score_frame(cfg, pyfunc_model, rows)
    scored = scored.sort_values(["day", "anomaly_score"], ascending=[True, False], kind="stable")
    scored["day"] = scored["day"].dt.strftime("%Y-%m-%d")
    out = score_dir(cfg)
    paths = []
    for day, per_day in scored[SCORE_COLUMNS].groupby("day", sort=True):
        path = out / f"{day}.csv"
        io.write_csv(per_day, path)
        paths.append(path)
    log.info("score: %d actor-days, %d flagged -> %s", len(scored), int(scored["is_anomaly"].sum()), out)
    return paths
