"""The MLflow pyfunc model that serves anomaly scores, not IsolationForest's ±1 labels.

A plain sklearn pyfunc only offers `predict` (1 / -1), so the registered model is this custom
`PythonModel`, logged "from code": the model holds `MODEL_CODE` (three lines that import this
class), not a cloudpickle of an instance. Loading therefore needs the `github-ueba` package
installed where the model is served (`mlflow models serve --env-manager local` from the project
venv). The detector travels as a joblib artifact, the flag rule as a JSON artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd

from github_ueba.config import ThresholdConfig

#: Artifact keys of the logged pyfunc model.
DETECTOR_ARTIFACT = "detector"
SERVING_ARTIFACT = "serving"

#: The model file MLflow stores and runs at load time (models from code; no pickled PythonModel).
MODEL_CODE = """from mlflow.models import set_model

from github_ueba.serving import UebaPyfunc

set_model(UebaPyfunc())
"""


def serving_spec(threshold: ThresholdConfig, feature_names: list[str]) -> dict[str, Any]:
    """The single-row flag rule stored with the model: flag when `anomaly_score > score_cutoff`.

    `fixed` keeps the configured cutoff (`decision_function < cutoff`). `contamination` and
    `budget` fall back to the forest's own offset (`decision_function < 0`): a daily top-k budget
    needs a whole day of rows, which one served request does not have.
    """
    if threshold.policy == "fixed":
        rule, cutoff = "fixed_cutoff", -float(threshold.cutoff)
    else:
        rule, cutoff = "forest_offset", 0.0
    return {
        "served_rule": rule,
        "score_cutoff": cutoff,
        "threshold": {
            "policy": threshold.policy,
            "cutoff": float(threshold.cutoff),
            "budget_per_day": int(threshold.budget_per_day),
        },
        "feature_names": list(feature_names),
    }


def threshold_from_spec(spec: dict[str, Any]) -> ThresholdConfig:
    """The training-time threshold policy stored in a serving spec."""
    return ThresholdConfig(**spec["threshold"])


def predict_frame(detector: Any, model_input: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Score rows: `anomaly_score` (higher = more anomalous) and `is_anomaly` by the served rule."""
    missing = [name for name in spec["feature_names"] if name not in model_input.columns]
    if missing:
        raise ValueError(f"model input lacks feature columns {missing}; expected {spec['feature_names']}")
    scores = np.asarray(detector.anomaly_score(model_input[spec["feature_names"]]), dtype="float64")
    return pd.DataFrame({"anomaly_score": scores, "is_anomaly": scores > spec["score_cutoff"]})


class UebaPyfunc(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper around the fitted `ActorDayDetector`, returning scores and flags."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Load the joblib detector and the serving spec from the model's artifacts."""
        self.detector = joblib.load(context.artifacts[DETECTOR_ARTIFACT])
        self.spec = json.loads(Path(context.artifacts[SERVING_ARTIFACT]).read_text())

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Anomaly score and flag per input row (feature columns; extra columns are ignored)."""
        return predict_frame(self.detector, model_input, self.spec)
