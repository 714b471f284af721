"""Detection metrics on a hand-made ranking whose every number is worked out below."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from github_ueba.evaluate import EvaluationError, detection_metrics


def _scores() -> pd.DataFrame:
    """200 actor-days; row i has the (i+1)-th highest score. Rows 0, 1 and 3 are flagged."""
    actors = [f"u{i % 20:02d}" for i in range(200)]
    days = pd.Timestamp("2026-05-01") + pd.to_timedelta(np.arange(200) // 20, unit="D")
    return pd.DataFrame(
        {"actor": actors, "day": days, "anomaly_score": np.linspace(1.0, -1.0, 200), "is_anomaly": False}
    ).assign(is_anomaly=lambda f: f.index.isin([0, 1, 3]))


def _labels(scores: pd.DataFrame) -> pd.DataFrame:
    def at(i: int, scenario: str) -> dict:
        return {"actor": scores.at[i, "actor"], "day": scores.at[i, "day"].strftime("%Y-%m-%d"), "scenario": scenario}

    return pd.DataFrame(
        [
            at(0, "exfiltration"),
            at(1, "benign_mass_clone"),
            at(2, "token_theft"),
            at(2, "benign_travel"),  # the attack wins on the same actor-day
            at(4, "exfiltration"),
            {"actor": "ghost", "day": "2026-05-03", "scenario": "exfiltration"},  # not scored
        ]
    )


def test_every_metric_on_a_known_ranking():
    scores = _scores()
    m = detection_metrics(scores, _labels(scores))
    assert (m["n_scored"], m["n_flagged"], m["n_positive"], m["n_benign_lookalikes"]) == (200, 3, 3, 1)
    assert m["n_labels_outside_scored"] == 1 and any("outside" in note for note in m["notes"])
    assert m["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert m["roc_auc"] == pytest.approx((197 + 196 + 195) / (3 * 197))
    assert (m["k_attack"], m["precision_at_k_attack"], m["recall_at_k_attack"]) == (3, 2 / 3, 2 / 3)
    assert (m["k_top1pct"], m["precision_top1pct"], m["recall_top1pct"]) == (2, 1 / 2, 1 / 3)
    assert (m["flagged_precision"], m["flagged_recall"]) == (1 / 3, 1 / 3)
    assert m["flagged_f1"] == pytest.approx(1 / 3)
    assert m["recall_top1pct/exfiltration"] == 0.5 and m["recall_top1pct/token_theft"] == 0.0
    assert m["recall_flagged/exfiltration"] == 0.5 and m["recall_flagged/token_theft"] == 0.0
    assert (m["benign_top1pct_count"], m["benign_top1pct_share"]) == (1, 0.5)
    assert (m["benign_flagged_count"], m["benign_flagged_share"]) == (1, 1 / 3)
    assert all(isinstance(v, (int, float)) for k, v in m.items() if k != "notes")


def test_no_positives_gives_nan_and_a_note():
    scores = _scores()
    labels = _labels(scores)
    m = detection_metrics(scores, labels.loc[labels["scenario"].str.startswith("benign")])
    assert m["n_positive"] == 0 and m["n_benign_lookalikes"] == 2
    for key in ("average_precision", "roc_auc", "precision_at_k_attack", "flagged_precision", "flagged_f1"):
        assert math.isnan(m[key]), key
    assert any("no labelled attack" in note for note in m["notes"])
    assert m["benign_flagged_count"] == 1


def test_nothing_flagged_and_no_labels():
    scores = _scores().assign(is_anomaly=False)
    m = detection_metrics(scores, _labels(scores))
    assert math.isnan(m["flagged_precision"]) and m["flagged_recall"] == 0 and m["flagged_f1"] == 0
    empty = detection_metrics(scores, pd.DataFrame(columns=["actor", "day", "scenario"]))
    assert empty["n_positive"] == 0 and math.isnan(empty["average_precision"])


def test_bad_input_is_named():
    scores = _scores()
    with pytest.raises(EvaluationError, match="anomaly_score"):
        detection_metrics(scores.drop(columns="anomaly_score"), _labels(scores))
    with pytest.raises(EvaluationError, match="same"):
        detection_metrics(pd.concat([scores, scores.iloc[:1]]), _labels(scores))
