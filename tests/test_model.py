"""The detector follows scikit-learn conventions, scores sensibly, saves, and the thresholds flag as documented."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from test_behaviour import make_base

from github_ueba.config import FeaturesConfig, ModelConfig, ThresholdConfig
from github_ueba.feature_sets import FULL_FEATURES, PAPER_FEATURES, WIDE_FEATURES, FeatureSetError, columns_for
from github_ueba.features.behaviour import behaviour_features
from github_ueba.model import (
    ActorDayDetector,
    DetectorInputError,
    ThresholdError,
    TrainingDataError,
    flag,
    training_rows,
)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    base = make_base(n_actors=30, n_days=50, seed=3, activity=0.8, n_bots=2)
    return behaviour_features(base, FeaturesConfig(baseline_days=30, min_history_days=5))


@pytest.fixture(scope="module")
def fitted(features) -> ActorDayDetector:
    return ActorDayDetector(feature_columns=columns_for("full"), n_estimators=60).fit(features)


def test_params_are_stored_unchanged_and_clone_round_trips():
    columns = ["git_clone", "git_clone_z"]
    detector = ActorDayDetector(feature_columns=columns, n_estimators=7, contamination=0.05, max_samples=64)
    assert detector.feature_columns is columns
    params = detector.get_params()
    assert params == {
        "feature_columns": columns, "log_transform": True, "n_estimators": 7, "max_samples": 64,
        "contamination": 0.05, "max_features": 1.0, "bootstrap": False, "random_state": 42, "n_jobs": None,
    }
    copy = clone(detector)
    assert copy.get_params() == params and copy is not detector
    assert ActorDayDetector(**params).get_params() == params
    assert not hasattr(copy, "pipeline_")
    with pytest.raises(NotFittedError):
        copy.decision_function(pd.DataFrame({"git_clone": [1.0], "git_clone_z": [0.0]}))


def test_from_config_copies_every_forest_setting():
    cfg = ModelConfig(n_estimators=11, contamination=0.1, max_samples=128, max_features=0.5, bootstrap=True,
                      random_state=7, n_jobs=1, log_transform=False)
    detector = ActorDayDetector.from_config(cfg, ["git_clone"])
    assert detector.get_params() == {
        "feature_columns": ["git_clone"], "log_transform": False, "n_estimators": 11, "max_samples": 128,
        "contamination": 0.1, "max_features": 0.5, "bootstrap": True, "random_state": 7, "n_jobs": 1,
    }


def test_fit_and_score_conventions(fitted, features):
    assert list(fitted.feature_names_in_) == list(FULL_FEATURES)
    assert fitted.n_features_in_ == len(FULL_FEATURES)
    assert set(fitted.log_columns_) == {c for c in FULL_FEATURES if not c.endswith("_z")}
    assert "volume_max_z" in fitted.feature_names_in_ and "volume_max_z" not in fitted.log_columns_
    decision = fitted.decision_function(features)
    np.testing.assert_allclose(fitted.anomaly_score(features), -decision)
    np.testing.assert_allclose(fitted.score_samples(features) - fitted.offset_, decision)
    np.testing.assert_array_equal(fitted.predict(features), np.where(decision < 0, -1, 1))
    threaded = clone(fitted).set_params(n_jobs=2).fit(features)
    np.testing.assert_allclose(threaded.decision_function(features), decision)
    shuffled = features.sample(frac=1.0, random_state=0)[list(reversed(features.columns))]
    expected = fitted.decision_function(features.loc[shuffled.index])
    np.testing.assert_allclose(fitted.decision_function(shuffled), expected)


def test_missing_and_bad_columns_are_named(fitted, features):
    with pytest.raises(DetectorInputError, match=r"missing feature columns \['history_days', 'max_z'\]"):
        fitted.decision_function(features.drop(columns=["max_z", "history_days"]))
    with pytest.raises(DetectorInputError, match="events"):
        fitted.decision_function(features.assign(events=np.nan))
    with pytest.raises(DetectorInputError, match="DataFrame"):
        fitted.decision_function(features[list(FULL_FEATURES)].to_numpy())


def test_log_only_on_non_negative_columns_and_negatives_score_like_zero(features):
    table = features.assign(signed=np.where(features["git_clone"] > 3, -1.5, 2.0))
    detector = ActorDayDetector(feature_columns=["git_clone", "git_push", "signed"], n_estimators=30).fit(table)
    assert list(detector.log_columns_) == ["git_clone", "git_push"]
    negative = table.assign(git_clone=-5.0)
    zero = table.assign(git_clone=0.0)
    np.testing.assert_allclose(detector.decision_function(negative), detector.decision_function(zero))


def test_pickle_joblib_and_skops_round_trip(fitted, features, tmp_path):
    expected = fitted.decision_function(features)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(fitted)).decision_function(features), expected)
    joblib.dump(fitted, tmp_path / "model.joblib")
    np.testing.assert_allclose(joblib.load(tmp_path / "model.joblib").decision_function(features), expected)
    skops_io = pytest.importorskip("skops.io")
    blob = skops_io.dumps(fitted.pipeline_)
    assert skops_io.get_untrusted_types(data=blob) == ["sklearn.tree._tree.Tree"]
    pipeline = skops_io.loads(blob, trusted=["sklearn.tree._tree.Tree"])
    np.testing.assert_allclose(pipeline.decision_function(features[list(FULL_FEATURES)].astype(float)), expected)


def test_feature_sets(features):
    assert {"max_z", "security_max_z", "history_days", "events"} <= set(FULL_FEATURES)
    assert "git_clone_z" in WIDE_FEATURES and "first_seen_countries" in WIDE_FEATURES
    assert "paper_z_git_clone" in PAPER_FEATURES and "git_clone_z" not in PAPER_FEATURES
    assert columns_for("paper") == list(PAPER_FEATURES)
    for name in ("full", "wide", "paper"):
        columns = columns_for(name)
        assert len(set(columns)) == len(columns) and set(columns) <= set(features.columns), name
    with pytest.raises(FeatureSetError, match="model.feature_set"):
        columns_for("fancy")


def _scores() -> tuple[pd.DataFrame, np.ndarray]:
    days = pd.to_datetime(["2026-05-01"] * 5 + ["2026-05-02"] * 3)
    actors = ["a", "b", "c", "d", "e", "a", "b", "c"]
    anomaly = np.array([0.30, 0.10, 0.20, -0.05, 0.20, 0.40, -0.10, -0.20])
    return pd.DataFrame({"actor": actors, "day": days, "anomaly_score": anomaly}), -anomaly


def test_fixed_threshold_is_a_cutoff_on_decision_function():
    scores, decision = _scores()
    flags = flag(scores, decision, ThresholdConfig(policy="fixed", cutoff=-0.15), None)
    assert flags.tolist() == [True, False, True, False, True, True, False, False]


def test_contamination_threshold_uses_the_model_offset_and_needs_a_float():
    scores, decision = _scores()
    cfg = ThresholdConfig(policy="contamination")
    assert flag(scores, decision, cfg, 0.1).tolist() == (decision < 0).tolist()
    with pytest.raises(ThresholdError, match="model.contamination"):
        flag(scores, decision, cfg, ActorDayDetector(contamination="auto"))
    assert flag(scores, decision, cfg, ActorDayDetector(contamination=0.2)).sum() == 5


def test_budget_takes_the_top_k_per_day_above_zero():
    scores, decision = _scores()
    flags = flag(scores, decision, ThresholdConfig(policy="budget", budget_per_day=2), None)
    assert flags.tolist() == [True, False, True, False, False, True, False, False]
    flags = flag(scores, decision, ThresholdConfig(policy="budget", budget_per_day=10), None)
    assert flags.tolist() == (scores["anomaly_score"] > 0).tolist()
    with pytest.raises(ThresholdError, match="policy"):
        flag(scores, decision, ThresholdConfig(policy="vibes"), None)


def test_training_rows_filter_and_errors(features):
    detect_start = pd.Timestamp(features["day"].max()) - pd.Timedelta(days=9)
    rows = training_rows(features, detect_start, 5, train_on_bots=False)
    assert (rows["day"] < detect_start).all() and (rows["history_days"] >= 5).all()
    assert not rows["is_bot"].any()
    with_bots = training_rows(features, detect_start, 5, train_on_bots=True)
    assert with_bots["is_bot"].any() and len(with_bots) > len(rows)
    with pytest.raises(TrainingDataError, match="features.min_history_days") as err:
        training_rows(features, detect_start, 500, train_on_bots=False)
    assert "window.lookback_days" in str(err.value) and "model.train_on_bots" in str(err.value)
    with pytest.raises(TrainingDataError, match="0 rows from 0 actors"):
        training_rows(features, features["day"].min(), 5, train_on_bots=True)
    with pytest.raises(TrainingDataError, match="history_days"):
        training_rows(features.drop(columns="history_days"), detect_start, 5, False)
