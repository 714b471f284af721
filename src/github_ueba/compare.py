"""Side-by-side detection quality of model configs on the same features (ours vs the paper's method)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from github_ueba import stages
from github_ueba.config import Config, load
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
    rows = table.loc[table["day"] >= pd.Timestamp(window.detect_start)].reset_index(drop=True)
    scored = stages.score_rows(cfg, detector, rows)
    return detection_metrics(scored[["actor", "day", "anomaly_score", "is_anomaly"]], labels)


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
    for name, extra in variants.items():
        cfg = load(base_overrides + (_dotlist(extra) if params else extra), params=params)
        metrics = evaluate_variant(cfg, table, labels)
        results[name] = {key: metrics.get(key) for key in HEADLINE} | {
            key: value for key, value in metrics.items() if key.startswith("recall_top1pct/")
        }
    return pd.DataFrame(results)


def _dotlist(group_overrides: list[str]) -> list[str]:
    """Expand `model=paper` into dotted keys of conf/model/paper.yaml (params.yaml cannot select groups)."""
    from omegaconf import OmegaConf

    from github_ueba.config import conf_dir

    keys: list[str] = []
    for item in group_overrides:
        group, _, option = item.partition("=")
        if "." in group:
            keys.append(item)
            continue
        values = OmegaConf.to_container(OmegaConf.load(conf_dir() / group / f"{option}.yaml"), resolve=False)
        for key, value in _flatten(values, group).items():
            if not (isinstance(value, str) and value.startswith("${")):
                keys.append(f"{key}={value}")
    return keys


def _flatten(node: Any, prefix: str) -> dict[str, Any]:
    if isinstance(node, dict):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}.{key}"))
        return flat
    return {prefix: "null" if node is None else node}
