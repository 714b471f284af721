"""Detection metrics of scored actor-days against labelled scenarios (attacks and benign look-alikes).

A label is (actor, day, scenario). Scenarios named `benign_*` are look-alikes: negatives that a
good detector should not rank high; every other scenario is an attack (positive). Unlabelled
scored rows are negatives. Labels on actor-days that were not scored are ignored and counted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from github_ueba.errors import InputError

BENIGN_PREFIX = "benign"
#: Share of the scored actor-days in the "top 1%" list an analyst reviews.
TOP_SHARE = 0.01


class EvaluationError(InputError, ValueError):
    """Scores or labels that cannot be evaluated (missing columns, duplicate actor-days)."""


def _keyed(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EvaluationError(f"{what}: missing columns {missing}")
    out = frame.loc[:, list(columns)].copy()
    out["actor"] = out["actor"].astype(str)
    day = pd.to_datetime(out["day"])
    out["day"] = (day.dt.tz_convert("UTC").dt.tz_localize(None) if day.dt.tz is not None else day).dt.normalize()
    return out


def _label_per_actor_day(labels: pd.DataFrame) -> pd.DataFrame:
    """One label per actor-day: an attack wins over a look-alike; the first scenario names it."""
    labels = labels.assign(attack=~labels["scenario"].astype(str).str.startswith(BENIGN_PREFIX))
    labels = labels.sort_values("attack", ascending=False, kind="stable")
    return labels.groupby(["actor", "day"], as_index=False).first()


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else math.nan


def _f1(precision: float, recall: float) -> float:
    """Harmonic mean; 0 when nothing was flagged or nothing flagged was right."""
    if math.isnan(precision) or precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def detection_metrics(scores: pd.DataFrame, labels: pd.DataFrame) -> dict[str, Any]:
    """Ranking and flag quality: AP, ROC AUC, precision/recall at k, flagged P/R/F1, per-scenario recall.

    `scores`: actor, day, anomaly_score (higher = more anomalous), is_anomaly. `labels`: actor,
    day, scenario. k is the number of attack actor-days (`*_at_k_attack`) and 1% of the scored
    actor-days (`*_top1pct`). Every value is a number except `notes` (a list of strings); metrics
    that need positives are NaN when there are none.
    """
    scored = _keyed(scores, ("actor", "day", "anomaly_score", "is_anomaly"), "scores")
    if scored.duplicated(["actor", "day"]).any():
        raise EvaluationError("scores: more than one row for the same (actor, day)")
    per_day = _label_per_actor_day(_keyed(labels, ("actor", "day", "scenario"), "labels"))
    merged = scored.merge(per_day, on=["actor", "day"], how="left", indicator=True)
    labelled = (merged["_merge"] == "both").to_numpy()
    n_outside = int(len(per_day) - labelled.sum())
    attack = labelled & merged["attack"].fillna(False).to_numpy(dtype=bool)
    benign = labelled & ~attack
    scenario = merged["scenario"].astype(object).to_numpy()

    n_scored = len(merged)
    order = np.lexsort((merged["day"].to_numpy(), merged["actor"].to_numpy(), -merged["anomaly_score"].to_numpy()))
    rank = np.empty(n_scored, dtype=np.int64)
    rank[order] = np.arange(n_scored)
    flagged = merged["is_anomaly"].to_numpy(dtype=bool)
    n_positive = int(attack.sum())
    k_attack = n_positive
    k_top = max(1, math.ceil(TOP_SHARE * n_scored)) if n_scored else 0
    top = rank < k_top
    notes: list[str] = []
    if n_outside:
        notes.append(f"{n_outside} labelled actor-days are outside the scored rows and were ignored")

    metrics: dict[str, Any] = {
        "n_scored": n_scored,
        "n_flagged": int(flagged.sum()),
        "n_positive": n_positive,
        "n_benign_lookalikes": int(benign.sum()),
        "n_labels_outside_scored": n_outside,
        "k_attack": k_attack,
        "k_top1pct": k_top,
    }
    if n_positive == 0:
        notes.append("no labelled attack actor-days among the scored rows: ranking metrics are NaN")
    has_both = 0 < n_positive < n_scored
    score = merged["anomaly_score"].to_numpy(dtype=np.float64)
    in_k = rank < k_attack
    tp_flagged = int((flagged & attack).sum())
    precision = _ratio(tp_flagged, flagged.sum())
    recall = _ratio(tp_flagged, n_positive)
    metrics.update(
        {
            "average_precision": float(average_precision_score(attack, score)) if n_positive else math.nan,
            "roc_auc": float(roc_auc_score(attack, score)) if has_both else math.nan,
            "precision_at_k_attack": _ratio((in_k & attack).sum(), k_attack),
            "recall_at_k_attack": _ratio((in_k & attack).sum(), n_positive),
            "precision_top1pct": _ratio((top & attack).sum(), k_top) if n_positive else math.nan,
            "recall_top1pct": _ratio((top & attack).sum(), n_positive),
            "flagged_precision": precision if n_positive else math.nan,
            "flagged_recall": recall,
            "flagged_f1": _f1(precision, recall) if n_positive else math.nan,
            "benign_top1pct_count": int((top & benign).sum()),
            "benign_top1pct_share": _ratio((top & benign).sum(), k_top),
            "benign_flagged_count": int((flagged & benign).sum()),
            "benign_flagged_share": _ratio((flagged & benign).sum(), flagged.sum()),
        }
    )
    if n_positive:
        by_scenario = pd.DataFrame({"scenario": scenario[attack], "top": top[attack], "flagged": flagged[attack]})
        recall_by = by_scenario.groupby("scenario")[["top", "flagged"]].mean()
        metrics.update({f"recall_top1pct/{name}": float(v) for name, v in recall_by["top"].items()})
        metrics.update({f"recall_flagged/{name}": float(v) for name, v in recall_by["flagged"].items()})
    metrics["notes"] = notes
    return metrics
