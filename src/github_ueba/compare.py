"""Side-by-side detection quality of model configs on the same features (ours vs the paper's method)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from github_ueba import stages
from github_ueba.config import Config, compose, load, validate
from github_ueba.errors import InputError

#: Variants compared by default: our model, and the paper's plain method on the same data.
DEFAULT_VARIANTS: dict[str, list[str]] = {"ours": [], "paper": ["model=paper"]}

HEADLINE = [
    "average_precision",
    "roc_auc",
    "recall_top1pct",
    "precision_top1pct",
    "benign_top1pct_count",
    "n_flagged",
    "flagged_precision",
    "flagged_recall",
]


def evaluate_variant(cfg: Config, table: pd.DataFrame, labels: pd.DataFrame) -> dict[str, Any]:
    """Train `cfg.model` on the days before the detect window and measure it on the detect window."""
    from github_ueba.evaluate import detection_metrics

    window = stages.read_window(cfg)
    detector, _ = stages.fit_detector(cfg, table, window.detect_start)
    scored = stages.score_rows(cfg, detector, stages.detect_rows(table, window))
    return detection_metrics(scored[["actor", "day", "anomaly_score", "is_anomaly"]], labels)


def variant_config(base_overrides: list[str], params: str | None, group_overrides: list[str]) -> Config:
    """The config plus group choices such as `model=paper`. A composed params file cannot select groups,
    so there the chosen group is composed from conf/ (with the file's seed) and replaces the file's node."""
    if params is None:
        return load(base_overrides + group_overrides)
    raw = OmegaConf.load(params)
    for choice in group_overrides:
        group = choice.partition("=")[0]
        raw[group] = compose([choice, f"seed={raw.seed}"])[group]
    return validate(OmegaConf.merge(raw, OmegaConf.from_dotlist(base_overrides)))


def compare(base_overrides: list[str], params: str | None = None,
            variants: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """One row of headline metrics per variant, on the features of the current `features` stage."""
    variants = variants or DEFAULT_VARIANTS
    base_cfg = load(base_overrides, params=params)
    labels = stages.labelled(base_cfg)
    if labels is None:
        raise InputError(f"{stages.stage_dir(base_cfg, 'ingest') / 'labels.csv'}: no labels to compare against")
    table = stages.load_features(base_cfg)
    results = {}
    for name, group_overrides in variants.items():
        metrics = evaluate_variant(variant_config(base_overrides, params, group_overrides), table, labels)
        results[name] = {key: metrics.get(key) for key in HEADLINE} | {
            key: value for key, value in metrics.items() if key.startswith("recall_top1pct/")
        }
    return pd.DataFrame(results)
