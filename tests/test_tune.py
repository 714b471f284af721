"""`github-ueba tune`: Optuna study over the detector on the tiny simulated enterprise, MLflow trial runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from github_ueba.cli import main
from github_ueba.config import ConfigError, load
from github_ueba.errors import InputError, UebaError
from github_ueba.tune import (
    excess_mass_area,
    load_labels,
    parse_search_space,
    read_feedback,
    resolve_objective,
    run_study,
    unpinned_specs,
)
from github_ueba.window import Window

from conftest import REPO, TINY

#: Attacks spread over the validation and detect windows (10 + 20 days), so validation has labels.
BASE = [*TINY, "source.attack_days=30"]
#: A small, fast search space (replaces conf/tune/default.yaml's).
SMALL_SPACE = [
    "~tune.search_space",
    "+tune.search_space={model:{n_estimators:{type:int,low:20,high:60,log:true},"
    "max_features:{type:float,low:0.5,high:1.0},log_transform:{type:categorical,choices:[true,false]},"
    "contamination:{type:float,low:0.01,high:0.1},threshold:{budget_per_day:{type:int,low:1,high:5}}}}",
]
#: Adds a features key: each distinct value recomputes the behaviour features from base_features.
WITH_BASELINE = [*SMALL_SPACE, "+tune.search_space.features={baseline_days:{type:int,low:20,high:40}}"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ingest + features of the tiny enterprise, once for the module."""
    data = tmp_path_factory.mktemp("tune") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        for stage in ("ingest", "features"):
            assert main([stage, *BASE, f"paths.data={data}", "tracking.enabled=false"]) == 0
    return data


def _overrides(data: Path, tmp: Path, *extra: str, tracking: bool = False, space: list[str] = SMALL_SPACE) -> list[str]:
    store = [f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}"] if tracking else ["tracking.enabled=false"]
    return [*BASE, f"paths.data={data}", f"tune.storage=sqlite:///{tmp / 'optuna.db'}", "tune.n_trials=3",
            *store, *space, *extra]


@pytest.fixture()
def at_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def test_study_logs_nested_mlflow_runs_and_writes_a_usable_tuned_config(tiny_data, tmp_path, monkeypatch):
    import mlflow

    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    monkeypatch.setenv("GITHUB_UEBA_CONF", str(conf))
    monkeypatch.chdir(tmp_path)
    tuned = conf / "model" / "tuned.yaml"
    result = run_study(_overrides(tiny_data, tmp_path, "tune.objective=average_precision", tracking=True,
                                  space=WITH_BASELINE), tuned_path=tuned)

    assert result.objective == "average_precision" and len(result.trials) == 3
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["github-ueba"])
    children = runs.loc[runs["tags.mlflow.parentRunId"] == result.parent_run_id]
    assert len(children) == 3
    assert set(children["tags.optuna.trial_number"]) == {"0", "1", "2"}
    assert (children["tags.optuna.state"] == "COMPLETE").all()
    assert children["params.model.max_features"].notna().all()
    assert "params.model.n_estimators" not in children  # pinned by TINY's model.n_estimators=50
    assert children["metrics.average_precision"].between(0, 1).all()
    # contamination and the budget only move the flag cut-off: not searched for a ranking objective
    assert "params.model.contamination" not in children or children["params.model.contamination"].isna().all()
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.parent_run_id, "plots")}
    assert "plots/optimization_history.png" in artifacts

    model = yaml.safe_load(tuned.read_text())
    reference = yaml.safe_load((REPO / "conf" / "model" / "isolation_forest.yaml").read_text())
    assert set(model) == set(reference) and model["name"] == "tuned"
    assert model["n_estimators"] == 50 and model["max_features"] == result.chosen["params"]["model.max_features"]
    assert "features.baseline_days=" in tuned.read_text()  # not a model key: a comment and an override
    cfg = load(["model=tuned"])
    assert cfg.model.max_features == result.chosen["params"]["model.max_features"]
    assert "model=tuned" in result.summary()


def test_study_resumes_under_the_same_name_without_repeating_trials(tiny_data, tmp_path, at_repo):
    out = tmp_path / "tuned.yaml"
    first = run_study(_overrides(tiny_data, tmp_path, "tune.n_trials=2", "tune.study_name=resume"), tuned_path=out)
    second = run_study(_overrides(tiny_data, tmp_path, "tune.n_trials=2", "tune.study_name=resume"), tuned_path=out)
    assert len(first.trials) == 2 and len(second.trials) == 4
    old = second.trials.iloc[:2]["model.max_features"].tolist()
    new = second.trials.iloc[2:]["model.max_features"].tolist()
    assert not set(old) & set(new)


def test_same_seed_and_data_give_the_same_best_params(tiny_data, tmp_path, at_repo):
    runs = [
        run_study(_overrides(tiny_data, tmp_path, f"tune.study_name=repro-{n}", "tune.objective=average_precision"),
                  tuned_path=tmp_path / f"tuned-{n}.yaml")
        for n in (1, 2)
    ]
    assert runs[0].chosen["params"] == runs[1].chosen["params"]
    assert runs[0].chosen["values"] == runs[1].chosen["values"]
    body = [(tmp_path / f"tuned-{n}.yaml").read_text().split("\n", 2)[2] for n in (1, 2)]  # after the header
    assert body[0] == body[1]


def test_pareto_returns_a_non_dominated_front(tiny_data, tmp_path, at_repo):
    result = run_study(_overrides(tiny_data, tmp_path, "tune.objective=pareto", "tune.n_trials=4"),
                       tuned_path=tmp_path / "tuned.yaml")
    assert result.best and all(set(t["values"]) == {"average_precision", "flagged_per_day"} for t in result.best)
    done = result.trials.loc[result.trials["state"] == "COMPLETE"]
    for t in result.best:
        ap, per_day = t["values"]["average_precision"], t["values"]["flagged_per_day"]
        dominated = (done["average_precision"] >= ap) & (done["flagged_per_day"] <= per_day) & (
            (done["average_precision"] > ap) | (done["flagged_per_day"] < per_day))
        assert not dominated.any()
    assert "model.threshold.budget_per_day" in result.trials  # flags matter for this objective


def test_a_bad_combination_fails_its_trial_not_the_study(tiny_data, tmp_path, at_repo):
    space = ["~tune.search_space",
             "+tune.search_space={model:{max_features:{type:categorical,choices:[0.8,1.5]},"
             "n_estimators:{type:int,low:20,high:40}}}"]
    result = run_study(_overrides(tiny_data, tmp_path, "tune.n_trials=5", space=space), tuned_path=tmp_path / "t.yaml")
    failed = result.trials.loc[result.trials["state"] == "FAIL"]
    assert len(failed) >= 1 and (failed["model.max_features"] == 1.5).all()
    assert failed["fail_reason"].str.contains("model.max_features").all()
    assert (result.trials["state"] == "COMPLETE").any() and result.chosen["params"]["model.max_features"] == 0.8


def test_a_study_where_every_trial_fails_raises_a_clear_error(tiny_data, tmp_path, at_repo):
    space = ["~tune.search_space", "+tune.search_space={model:{max_features:{type:float,low:1.5,high:2.0}}}"]
    with pytest.raises(UebaError, match="no trial .* completed.*max_features"):
        run_study(_overrides(tiny_data, tmp_path, "tune.n_trials=2", space=space), tuned_path=tmp_path / "t.yaml")
    assert not (tmp_path / "t.yaml").exists()


def test_excess_mass_ranks_the_true_density_above_random_and_inverted_scores():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(3000, 2))
    uniform = rng.uniform(data.min(axis=0), data.max(axis=0), size=(20000, 2))
    density = lambda x: -(x**2).sum(axis=1)  # noqa: E731  (higher = more normal: the Gaussian's log density)
    good = excess_mass_area(density(data), density(uniform))
    random = excess_mass_area(rng.random(len(data)), rng.random(len(uniform)))
    inverted = excess_mass_area(-density(data), -density(uniform))
    assert good > 1.5 * random > 0
    assert random > inverted


def test_search_space_accepts_nested_and_dotted_keys_and_rejects_bad_specs():
    specs = parse_search_space({"model": {"n_estimators": {"type": "int", "low": 10, "high": 20, "log": True}},
                                "features.baseline_days": {"type": "int", "low": 7, "high": 30}})
    assert [s.name for s in specs] == ["features.baseline_days", "model.n_estimators"]
    with pytest.raises(ConfigError, match="tune.search_space.model.n_estimators"):
        parse_search_space({"model": {"n_estimators": {"type": "int", "low": 50, "high": 10}}})
    pinned = unpinned_specs(specs, ["model=paper", "model.n_estimators=50", "tune.n_trials=3"])
    assert [s.name for s in pinned] == ["features.baseline_days"]
    with pytest.raises(ConfigError, match="categorical"):
        parse_search_space({"model.log_transform": {"type": "categorical", "choices": []}})


def test_feedback_file_is_read_and_bad_lines_are_named(tmp_path):
    good = tmp_path / "feedback.csv"
    good.write_text("actor,day,label\nalice,2026-11-02,true_positive\nbob,2026-11-03,false_positive\n")
    labels = read_feedback(good)
    assert labels["scenario"].tolist() == ["feedback", "benign_feedback"]
    bad = tmp_path / "bad.csv"
    bad.write_text("actor,day,label\nalice,2026-11-02,true_positive\nbob,2026-11-03,maybe\n")
    with pytest.raises(InputError, match=r"bad.csv:3: label 'maybe'"):
        read_feedback(bad)


def test_auto_objective_falls_back_to_excess_mass_without_labels_in_validation():
    import datetime as dt

    window = Window(dt.date(2026, 9, 1), dt.date(2026, 11, 30), dt.date(2026, 11, 1), dt.date(2026, 11, 11))
    attack_in_detect = pd.DataFrame({"actor": ["a"], "day": [pd.Timestamp("2026-11-20")], "scenario": ["stolen_token"]})
    attack_in_validation = attack_in_detect.assign(day=pd.Timestamp("2026-11-05"))
    assert resolve_objective("auto", None, window) == "excess_mass"
    assert resolve_objective("auto", attack_in_detect, window) == "excess_mass"
    assert resolve_objective("auto", attack_in_validation, window) == "average_precision"
    with pytest.raises(InputError, match="validation window"):
        resolve_objective("average_precision", attack_in_detect, window)


def test_excess_mass_study_runs_without_searching_threshold_or_feature_keys(tiny_data, tmp_path, at_repo):
    result = run_study(_overrides(tiny_data, tmp_path, "tune.objective=excess_mass", "tune.n_trials=2",
                                  space=WITH_BASELINE), tuned_path=tmp_path / "t.yaml")
    assert (result.trials["state"] == "COMPLETE").all()
    assert (result.trials["excess_mass"] > 0).all()
    searched = {c for c in result.trials if c.startswith(("model.", "features."))}
    assert searched == {"model.max_features", "model.log_transform"}  # n_estimators: pinned by TINY


def test_feedback_merges_with_simulator_labels_and_wins_on_the_same_actor_day(tmp_path):
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "labels.csv").write_text(
        "actor,day,scenario\nalice,2026-11-02,stolen_token\ncarol,2026-11-04,admin_abuse\n")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "feedback.csv").write_text(
        "actor,day,label\nalice,2026-11-02,false_positive\ndave,2026-11-05,true_positive\n")
    labels = load_labels(load([f"paths.data={tmp_path}", "tracking.enabled=false"]))
    by_actor = dict(zip(labels["actor"], labels["scenario"]))
    assert by_actor == {"alice": "benign_feedback", "carol": "admin_abuse", "dave": "feedback"}
