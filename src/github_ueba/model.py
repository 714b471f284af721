"""The actor-day detector (a scikit-learn IsolationForest pipeline), its threshold policies and training rows.

`ActorDayDetector` follows scikit-learn's estimator conventions (parameters stored unchanged in
`__init__`, fitted attributes end in `_`, `clone`/`get_params` work). Inside it is a plain
`Pipeline` of scikit-learn types only: a `ColumnTransformer` applying `numpy.log1p` to the columns
that were non-negative in training, then an `IsolationForest`; MLflow can log `pipeline_` with skops
(`skops_trusted_types=["sklearn.tree._tree.Tree"]`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from joblib import parallel_config
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.validation import check_is_fitted

from github_ueba.config import ModelConfig, ThresholdConfig
from github_ueba.errors import InputError, UebaError

#: Fewest training rows and distinct actors `training_rows` accepts.
MIN_TRAINING_ROWS = 50
MIN_TRAINING_ACTORS = 3

#: The detector's parameters passed unchanged to IsolationForest (and read from the `model` config).
FOREST_PARAMS: tuple[str, ...] = (
    "n_estimators", "max_samples", "contamination", "max_features", "bootstrap", "random_state", "n_jobs",
)


class DetectorInputError(InputError, ValueError):
    """The rows given to the detector lack feature columns or hold values it cannot score."""


class ThresholdError(UebaError, ValueError):
    """A threshold policy that cannot be applied with the given configuration."""


class TrainingDataError(UebaError, ValueError):
    """Too few rows or actors to train on; the message names the config keys to change."""


def is_z_score(column: str) -> bool:
    """True for z-score columns (`git_clone_z`, `max_z`, `paper_z_git_clone`), which are never logged."""
    return column.endswith("_z") or column.startswith("paper_z_")


class ActorDayDetector(OutlierMixin, BaseEstimator):
    """IsolationForest over actor-day features; lower `decision_function` = more anomalous.

    When `log_transform`, columns whose training values are all >= 0 pass through `numpy.log1p`
    first (counts are heavy-tailed), except z-scores (`*_z`, `paper_z_*`): they stay linear, so a
    z of 100 stands further from a z of 15 than their logs would. Scoring clips negative
    values in log columns to 0 before the log: every split threshold the forest learned lies above
    the training minimum (>= 0), so a value below 0 takes the same branches as 0 and the scores
    are unchanged.
    """

    def __init__(
        self,
        feature_columns: Sequence[str] | None = None,
        log_transform: bool = True,
        n_estimators: int = 300,
        max_samples: Any = "auto",
        contamination: Any = "auto",
        max_features: float = 1.0,
        bootstrap: bool = False,
        random_state: int | None = 42,
        n_jobs: int | None = None,
    ) -> None:
        self.feature_columns = feature_columns
        self.log_transform = log_transform
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.random_state = random_state
        self.n_jobs = n_jobs

    @classmethod
    def from_config(cls, model_cfg: ModelConfig, feature_columns: Sequence[str]) -> "ActorDayDetector":
        """A detector with the IsolationForest settings of `model` in the config."""
        forest = {name: getattr(model_cfg, name) for name in FOREST_PARAMS}
        return cls(feature_columns=list(feature_columns), log_transform=model_cfg.log_transform, **forest)

    def _fit_columns(self, X: pd.DataFrame) -> list[str]:
        if self.feature_columns is not None:
            return list(self.feature_columns)
        return [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])]

    @staticmethod
    def _as_matrix(X: Any, columns: list[str], fitted_on: str) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise DetectorInputError(f"expected a pandas DataFrame with named feature columns, got {type(X).__name__}")
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise DetectorInputError(
                f"missing feature columns {missing} ({len(missing)} of the {len(columns)} {fitted_on}); "
                "compute behaviour features first or choose another model.feature_set"
            )
        try:
            matrix = X[columns].astype(np.float64)
        except (TypeError, ValueError) as err:
            raise DetectorInputError(f"feature columns must be numeric: {err}") from None
        values = matrix.to_numpy()
        if not np.isfinite(values).all():
            bad = [c for c, ok in zip(columns, np.isfinite(values).all(axis=0)) if not ok]
            raise DetectorInputError(f"feature columns with NaN or infinite values: {bad}")
        return matrix

    def fit(self, X: pd.DataFrame, y: Any = None) -> "ActorDayDetector":
        """Fit the log1p + IsolationForest pipeline on the feature columns of `X` (y is ignored)."""
        columns = self._fit_columns(X) if isinstance(X, pd.DataFrame) else []
        if isinstance(X, pd.DataFrame) and not columns:
            raise DetectorInputError("no numeric feature columns to fit on")
        matrix = self._as_matrix(X, columns, "requested feature columns")
        if matrix.empty:
            raise DetectorInputError("no rows to fit on")
        log_columns = [c for c in columns if matrix[c].min() >= 0 and not is_z_score(c)] if self.log_transform else []
        if log_columns:
            transform: Any = ColumnTransformer(
                [("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one"), log_columns)],
                remainder="passthrough",
                verbose_feature_names_out=False,
            )
        else:
            transform = "passthrough"
        forest = IsolationForest(**{name: getattr(self, name) for name in FOREST_PARAMS})
        self.pipeline_ = Pipeline([("transform", transform), ("forest", forest)]).fit(matrix)
        self.feature_names_in_ = np.asarray(columns, dtype=object)
        self.n_features_in_ = len(columns)
        self.log_columns_ = np.asarray(log_columns, dtype=object)
        names = transform.get_feature_names_out() if log_columns else columns
        self.forest_feature_names_ = np.asarray(list(names), dtype=object)
        self.offset_ = float(self.pipeline_[-1].offset_)
        return self

    def transform_for_forest(self, X: pd.DataFrame) -> np.ndarray:
        """The float32 matrix the forest sees (columns in `forest_feature_names_` order)."""
        return np.asarray(self.pipeline_[:-1].transform(self._scoring_matrix(X)), dtype=np.float32)

    def _scoring_matrix(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "pipeline_")
        matrix = self._as_matrix(X, list(self.feature_names_in_), "columns the detector was fitted on")
        if len(self.log_columns_):
            log_columns = list(self.log_columns_)
            matrix[log_columns] = matrix[log_columns].clip(lower=0.0)
        return matrix

    def _score(self, method: str, X: pd.DataFrame) -> np.ndarray:
        """Call `method` of the pipeline; with `n_jobs` set, the trees are walked in that many threads."""
        matrix = self._scoring_matrix(X)
        if self.n_jobs is None:
            return getattr(self.pipeline_, method)(matrix)
        with parallel_config(backend="threading", n_jobs=self.n_jobs):
            return getattr(self.pipeline_, method)(matrix)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """IsolationForest decision function: below 0 is an outlier by the model's own offset."""
        return self._score("decision_function", X)

    def score_samples(self, X: pd.DataFrame) -> np.ndarray:
        """IsolationForest's raw score (the opposite of the anomaly score in the original paper)."""
        return self._score("score_samples", X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """-1 for outliers and 1 for inliers, by the model's own offset."""
        return self._score("predict", X)

    def anomaly_score(self, X: pd.DataFrame) -> np.ndarray:
        """Higher = more anomalous: `-decision_function(X)`, > 0 beyond the model's own offset."""
        return -self.decision_function(X)


def flag(
    scores: pd.DataFrame,
    decision: np.ndarray,
    cfg: ThresholdConfig,
    contamination: Any = None,
) -> np.ndarray:
    """Boolean flags for scored rows (`actor`, `day`, `anomaly_score`) by `model.threshold.policy`.

    - `fixed`: decision_function < `cutoff` (the paper: -0.32).
    - `contamination`: decision_function < 0, the model's own offset; needs `model.contamination`
      set to a float (pass the detector or its contamination setting as `contamination`).
    - `budget`: per day, the `budget_per_day` highest anomaly scores among rows the model itself
      calls anomalous (anomaly_score > 0); ties go to the earlier actor name.
    """
    decision = np.asarray(decision, dtype=np.float64)
    if len(decision) != len(scores):
        raise ThresholdError(f"{len(decision)} decision values for {len(scores)} scored rows")
    if cfg.policy == "fixed":
        return decision < cfg.cutoff
    if cfg.policy == "contamination":
        setting = getattr(contamination, "contamination", contamination)
        if setting is None or isinstance(setting, str):
            raise ThresholdError(
                f"model.threshold.policy=contamination needs model.contamination set to a float in (0, 0.5] "
                f"(it is {setting!r}); or use model.threshold.policy=fixed or budget"
            )
        return decision < 0
    if cfg.policy == "budget":
        missing = [c for c in ("actor", "day", "anomaly_score") if c not in scores.columns]
        if missing:
            raise ThresholdError(f"budget policy: scores lack columns {missing}")
        ranked = pd.DataFrame(
            {
                "day": scores["day"].to_numpy(),
                "score": scores["anomaly_score"].to_numpy(dtype=np.float64),
                "actor": scores["actor"].astype(str).to_numpy(),
                "position": np.arange(len(scores)),
            }
        )
        ranked = ranked.loc[ranked["score"] > 0].sort_values(
            ["day", "score", "actor"], ascending=[True, False, True], kind="stable"
        )
        chosen = ranked["position"].to_numpy()[ranked.groupby("day").cumcount().to_numpy() < cfg.budget_per_day]
        flags = np.zeros(len(scores), dtype=bool)
        flags[chosen] = True
        return flags
    raise ThresholdError(f"model.threshold.policy={cfg.policy!r}: expected fixed, contamination or budget")


def training_rows(
    features: pd.DataFrame,
    detect_start: pd.Timestamp,
    min_history_days: int,
    train_on_bots: bool,
    min_rows: int = MIN_TRAINING_ROWS,
    min_actors: int = MIN_TRAINING_ACTORS,
) -> pd.DataFrame:
    """Rows to train on: days before `detect_start`, with >= `min_history_days` of history, no bots."""
    missing = [c for c in ("actor", "day", "history_days") if c not in features.columns]
    if missing:
        raise TrainingDataError(f"features table lacks columns {missing}; run the `features` stage first")
    before = features["day"] < pd.Timestamp(detect_start)
    with_history = before & (features["history_days"] >= min_history_days)
    keep = with_history
    if not train_on_bots and "is_bot" in features.columns:
        keep = keep & ~features["is_bot"].astype(bool)
    rows = features.loc[keep]
    n_actors = rows["actor"].nunique()
    if len(rows) < min_rows or n_actors < min_actors:
        raise TrainingDataError(
            f"too little training data before {pd.Timestamp(detect_start):%Y-%m-%d}: {len(rows)} rows from "
            f"{n_actors} actors (need >= {min_rows} rows and >= {min_actors} actors); "
            f"{int(before.sum())} actor-days before the detect window, {int(with_history.sum())} of them with "
            f">= {min_history_days} days of history. Read more history (window.lookback_days), score fewer "
            f"days (window.detect_days, window.validation_days), lower features.min_history_days"
            + ("" if train_on_bots else ", or set model.train_on_bots=true")
        )
    return rows
