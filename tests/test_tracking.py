"""MLflow tracking, registry, promotion and the `score` command against a real sqlite store in a temp folder.

The features table is built from a synthetic base table through the real behaviour-feature code;
`stages.train` / `stages.detect` run with tracking off, and the tracking functions are called on
their outputs, so the tests hold whether or not the stages call them too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from github_ueba import io, scoring, stages, tracking
from github_ueba.config import Config, FeaturesConfig, PathsConfig, TrackingConfig, WindowConfig
from github_ueba.errors import InputError
from github_ueba.features.behaviour import COUNT_FEATURES, behaviour_features
from github_ueba.model import training_rows
from github_ueba.window import resolve

END = dt.date(2026, 11, 30)
N_ACTORS, N_DAYS = 24, 60
#: (actor, days before END, scenario, {count: value}) injected into the detect window.
ATTACKS = [
    ("dev-003", 2, "mass_clone", {"git_clone": 400, "new_repos": 40, "new_repo_clones": 300, "unique_repos": 45}),
    ("dev-011", 4, "protection_teardown", {"protection_changes": 6, "first_seen_countries": 1, "unique_countries": 2}),
]


@dataclass
class Project:
    """A temp project folder with features, a trained model, detect outputs and a tracked run."""

    root: Path
    cfg: Config  # tracking on, store in root
    cfg_off: Config  # same, tracking off (what the stages run with)
    uri: str
    run_id: str
    version: str
    detector: object
    table: pd.DataFrame


def synthetic_base(seed: int = 7) -> pd.DataFrame:
    """Base features (the kql/ output shape) for N_ACTORS over N_DAYS, with ATTACKS injected."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(END - dt.timedelta(days=N_DAYS - 1), END, freq="D")
    actors = [f"dev-{i:03d}" for i in range(N_ACTORS - 1)] + ["dependabot[bot]"]
    grid = pd.MultiIndex.from_product([actors, days], names=["actor", "day"]).to_frame(index=False)
    active = rng.random(len(grid)) < 0.8
    grid = grid.loc[active].reset_index(drop=True)
    rates = rng.uniform(0.5, 4.0, size=(N_ACTORS, len(COUNT_FEATURES)))
    rare = ("protection_changes", "first_seen_countries", "members_removed")
    rates[:, [COUNT_FEATURES.index(c) for c in rare]] = 0.02
    actor_index = grid["actor"].map({a: i for i, a in enumerate(actors)}).to_numpy()
    counts = rng.poisson(rates[actor_index])
    base = pd.concat([grid, pd.DataFrame(counts, columns=list(COUNT_FEATURES))], axis=1)
    base["is_weekend"] = (base["day"].dt.dayofweek >= 5).astype("int64")
    base["is_leaver"] = 0
    base["days_to_removal"] = -1
    for actor, back, _, values in ATTACKS:
        day = pd.Timestamp(END - dt.timedelta(days=back))
        mask = (base["actor"] == actor) & (base["day"] == day)
        if not mask.any():
            base = pd.concat([base, base.loc[base["actor"] == actor].tail(1).assign(day=day)], ignore_index=True)
            mask = (base["actor"] == actor) & (base["day"] == day)
        for column, value in values.items():
            base.loc[mask, column] = value
    base["is_bot"] = base["actor"].str.endswith("[bot]")
    return base.sort_values(["actor", "day"]).reset_index(drop=True)


def make_config(root: Path, **tracking_kw) -> Config:
    """A config rooted in `root`: small forest, tracking on, store from env MLFLOW_TRACKING_URI."""
    cfg = Config(
        window=WindowConfig(end=END.isoformat(), lookback_days=N_DAYS, detect_days=10, validation_days=5),
        features=FeaturesConfig(baseline_days=20, min_history_days=5),
        tracking=TrackingConfig(**tracking_kw),
        paths=PathsConfig(data=str(root / "data"), models=str(root / "models")),
    )
    cfg.model.n_estimators = 40
    return cfg


def write_inputs(cfg: Config) -> pd.DataFrame:
    """What ingest + features would write: window.json, quality.json, labels.csv, features.parquet."""
    window = resolve(cfg.window, END)
    ingest = stages.stage_dir(cfg, "ingest")
    io.write_json(window.to_dict(), ingest / "window.json")
    io.write_json({"source": "simulator", "actor_days": 1}, ingest / "quality.json")
    labels = pd.DataFrame([(a, (END - dt.timedelta(days=back)).isoformat(), s) for a, back, s, _ in ATTACKS],
                          columns=["actor", "day", "scenario"])
    io.write_csv(labels, ingest / "labels.csv")
    table = behaviour_features(synthetic_base(), cfg.features)
    io.write_parquet(table, stages.stage_dir(cfg, "features") / "features.parquet")
    return table


def train_and_detect(cfg: Config, cfg_off: Config, table: pd.DataFrame) -> tuple[str, object]:
    """Run the real train and detect stages (tracking off), then log both through `tracking`."""
    train_metrics = stages.train(cfg_off)
    detector = joblib.load(stages.model_path(cfg))
    window = stages.read_window(cfg)
    rows = training_rows(table, pd.Timestamp(window.detect_start), cfg.features.min_history_days, False)
    run_id = tracking.log_train(cfg, detector, rows, train_metrics)
    detect_metrics = stages.detect(cfg_off)
    tracking.log_detect(cfg, stages.stage_dir(cfg, "detect"), detect_metrics)
    return run_id, detector


def build_project(root: Path) -> Project:
    """Features, model, detect outputs and a train+detect run in a store under `root`."""
    cfg = make_config(root)
    cfg_off = dataclasses.replace(cfg, tracking=TrackingConfig(enabled=False))
    table = write_inputs(cfg)
    run_id, detector = train_and_detect(cfg, cfg_off, table)
    info = io.read_json(tracking.run_info_path(cfg))
    return Project(root, cfg, cfg_off, tracking.tracking_uri(cfg), run_id, info["model_version"], detector, table)


def migrated_store(cache: pytest.Cache, dest: Path) -> str:
    """Copy an empty, already-migrated MLflow sqlite DB to `dest`; return its URI.

    Creating and migrating a fresh store runs every MLflow schema migration, which is slow; the
    template is built once per MLflow version in pytest's cache folder.
    """
    template = cache.mkdir(f"mlflow-{mlflow.__version__}-empty-store") / "mlflow.db"
    if not template.exists():
        building = template.with_suffix(f".{os.getpid()}.tmp")
        MlflowClient(tracking_uri=f"sqlite:///{building}").search_experiments()
        os.replace(building, template)
    shutil.copy2(template, dest)
    return f"sqlite:///{dest}"


@pytest.fixture(scope="module")
def project(tmp_path_factory, pytestconfig) -> Project:
    """One tracked project per module, in a copy of a migrated template store."""
    root = tmp_path_factory.mktemp("tracked")
    uri = migrated_store(pytestconfig.cache, root / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(root)
        yield build_project(root)


@pytest.fixture()
def store(project, monkeypatch) -> MlflowClient:
    """The project's store as the active one (env and cwd), and a client on it."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", project.uri)
    monkeypatch.chdir(project.root)
    monkeypatch.delenv(tracking.PSEUDONYM_KEY_ENV, raising=False)
    tracking.use_store(project.cfg)
    return MlflowClient()


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_train_and_detect_run_has_params_metrics_artifacts_and_version(project, store):
    run = store.get_run(project.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["model.n_estimators"] == "40" and params["model.threshold.policy"] == "budget"
    assert params["window.detect_days"] == "10" and params["features.baseline_days"] == "20"
    assert params["source.name"] == "simulator" and "source.seed" in params and params["seed"] == "42"
    assert not any(key.startswith(("paths.", "tracking.")) for key in params)
    for key in ("train_rows", "train_actors", "train_days", "train_score_p50", "train_score_p99", "n_scored",
                "n_flagged", "n_anomalies", "average_precision", "score_p99", "detect_seconds",
                "recall_mass_clone", "recall_protection_teardown", "recall_top1pct_mass_clone"):
        assert key in metrics, key
    detect = json.loads((Path(project.cfg.paths.data) / "detect" / "metrics.json").read_text())
    assert metrics["n_flagged"] == detect["n_flagged"] and metrics["n_anomalies"] == detect["n_flagged"]
    assert tags["has_detect_metrics"] == "true" and tags["source"] == "simulator"
    assert tags["model_version"] == project.version
    artifacts = _artifacts(store, project.run_id)
    assert {"features.json", "params.yaml", "detect/scores.csv", "detect/anomalies.csv", "detect/quality.json",
            "detect/params.yaml", "detect/metrics.json", "detect/plots/score_distribution.csv"} <= artifacts
    logged = store.download_artifacts(project.run_id, "features.json", str(project.root))
    assert json.loads(Path(logged).read_text())["features"] == list(project.detector.feature_names_in_)
    version = store.get_model_version(project.cfg.tracking.registered_model, project.version)
    assert version.run_id == project.run_id and version.status == "READY"


def test_model_metadata_records_the_served_rule(project, store):
    info = mlflow.models.get_model_info(f"models:/{project.cfg.tracking.registered_model}/{project.version}")
    assert info.metadata["served_rule"] == "forest_offset" and info.metadata["score_cutoff"] == 0.0
    assert info.metadata["threshold"]["policy"] == "budget"
    inputs = info.signature.inputs.input_names()
    assert inputs == list(project.detector.feature_names_in_)
    assert {t.name for t in info.signature.inputs.input_types()} <= {"long", "double", "boolean"}


def sandbox(project: Project, tmp_path: Path, **tracking_kw) -> Config:
    """The project's model and ingest/detect outputs copied under `tmp_path` (no mlflow.json), and its config."""
    cfg = dataclasses.replace(project.cfg, tracking=TrackingConfig(**tracking_kw),
                              paths=PathsConfig(data=str(tmp_path / "data"), models=str(tmp_path / "models")))
    for stage in ("ingest", "detect"):
        shutil.copytree(stages.stage_dir(project.cfg, stage), stages.stage_dir(cfg, stage))
    stages.model_path(cfg).parent.mkdir(parents=True)
    shutil.copy2(stages.model_path(project.cfg), stages.model_path(cfg))
    return cfg


def test_promote_needs_detect_metrics_unless_forced(project, store, tmp_path):
    cfg = sandbox(project, tmp_path)
    rows = project.table.head(60)
    bare_run = tracking.log_train(cfg, project.detector, rows, {"train_rows": len(rows)})
    bare = tracking.choose_version(cfg, run_id=bare_run)
    assert int(bare.version) > int(project.version) and tracking.choose_version(cfg).version == bare.version
    with pytest.raises(tracking.TrackingError, match="no detect metrics.*--force"):
        tracking.promote(cfg, run_id=bare_run)
    forced = tracking.promote(cfg, version=bare.version, force=True, reason="hotfix", who="alice")
    assert forced.aliases == ["champion"] and forced.tags["promoted_by"] == "alice"
    assert forced.tags["promotion_reason"] == "hotfix" and forced.tags["promoted_without_detect_metrics"] == "true"
    assert dt.datetime.fromisoformat(forced.tags["promoted_at"]).tzinfo is not None
    chosen = tracking.promote(cfg, version=project.version, reason="detect looked right")
    name = cfg.tracking.registered_model
    assert str(store.get_model_version_by_alias(name, "champion").version) == str(chosen.version) == project.version
    with pytest.raises(tracking.TrackingError, match="no version 999"):
        tracking.promote(cfg, version=999)


def test_champion_and_score_command_match_the_in_process_detector(project, store):
    cfg = project.cfg
    tracking.promote(cfg, version=project.version)
    champion = tracking.load_champion(cfg)
    rows = project.table.loc[project.table["day"] >= pd.Timestamp(stages.read_window(cfg).detect_start)]
    served = champion.predict(rows)
    np.testing.assert_allclose(served["anomaly_score"], project.detector.anomaly_score(rows), rtol=0, atol=1e-12)
    days = [END - dt.timedelta(days=2), END]
    paths = scoring.score(cfg, days=days)
    assert [p.name for p in paths] == [f"{d.isoformat()}.csv" for d in days]
    expected = pd.read_csv(Path(cfg.paths.data) / "detect" / "scores.csv")
    for path in paths:
        got = pd.read_csv(path, keep_default_na=False)
        assert list(got.columns) == scoring.SCORE_COLUMNS
        assert got["anomaly_score"].is_monotonic_decreasing
        merged = got.merge(expected, on=["actor", "day"], suffixes=("", "_detect"), validate="one_to_one")
        assert len(merged) == len(expected.loc[expected["day"] == path.stem]) == len(got)
        np.testing.assert_allclose(merged["anomaly_score"], merged["anomaly_score_detect"], rtol=0, atol=1e-12)
        assert (merged["is_anomaly"] == merged["is_anomaly_detect"]).all()
        assert (got.loc[got["is_anomaly"], "reasons"].str.len() > 0).all()
    first = pd.read_csv(paths[0])
    assert first.iloc[0]["actor"] == "dev-003" and bool(first.iloc[0]["is_anomaly"])


def test_score_rejects_days_without_data_and_a_missing_champion(project, store, tmp_path):
    with pytest.raises(tracking.TrackingError, match="promote"):
        tracking.load_champion(dataclasses.replace(project.cfg, tracking=TrackingConfig(registered_model="nobody")))
    tracking.promote(project.cfg, version=project.version)
    cfg = sandbox(project, tmp_path)
    gap = pd.Timestamp(END - dt.timedelta(days=2))
    with_gap = project.table.loc[project.table["day"] != gap]
    io.write_parquet(with_gap, stages.stage_dir(cfg, "features") / "features.parquet")
    with pytest.raises(InputError, match=f"no actor-days on {gap.date()}"):
        scoring.score(cfg, days=[gap.date(), END])
    assert not scoring.score_dir(cfg).exists()


def test_pseudonymized_artifacts_hold_no_actor_names(project, store, tmp_path, monkeypatch):
    cfg = sandbox(project, tmp_path, pseudonymize_actors=True)
    runs_before = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises(tracking.TrackingError, match=tracking.PSEUDONYM_KEY_ENV):
        tracking.log_detect(cfg, stages.stage_dir(cfg, "detect"), {"n_flagged": 1})
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs_before
    monkeypatch.setenv(tracking.PSEUDONYM_KEY_ENV, "test-key-123")
    run_id = tracking.log_detect(cfg, stages.stage_dir(cfg, "detect"), {"n_flagged": 1})
    assert run_id != project.run_id
    local = Path(store.download_artifacts(run_id, "detect", str(tmp_path / "pseudo")))
    texts = {p.name: p.read_text() for p in local.rglob("*") if p.is_file()}
    actors = set(project.table["actor"])
    assert {"scores.csv", "anomalies.csv", "quality.json", "params.yaml"} <= set(texts)
    assert not [(name, a) for name, text in texts.items() for a in actors if a in text]
    pseudo = hmac.new(b"test-key-123", b"dev-003", hashlib.sha256).hexdigest()[:16]
    assert pseudo in texts["anomalies.csv"]
    run = store.get_run(run_id)
    assert run.data.tags["has_detect_metrics"] == "true"
    assert "test-key-123" not in json.dumps({**run.data.params, **run.data.tags})


def test_changed_threshold_logs_a_nested_detect_run(project, store):
    cfg = dataclasses.replace(project.cfg)
    cfg.model = dataclasses.replace(cfg.model, threshold=dataclasses.replace(cfg.model.threshold, policy="fixed"))
    run_id = tracking.log_detect(cfg, stages.stage_dir(cfg, "detect"), {"n_flagged": 5})
    child = store.get_run(run_id)
    assert child.data.tags["mlflow.parentRunId"] == project.run_id
    assert child.data.params["model.threshold.policy"] == "fixed" and child.data.metrics["n_flagged"] == 5
    assert child.data.tags["model_version"] == project.version


def test_run_from_another_directory_lands_in_the_same_store(project, store, tmp_path, monkeypatch):
    cfg = sandbox(project, tmp_path / "dvc-temp-copy", experiment="from-elsewhere")
    elsewhere = tmp_path / "dvc-temp-copy"
    monkeypatch.chdir(elsewhere)
    rows = project.table.head(60)
    run_id = tracking.log_train(cfg, project.detector, rows, {"train_rows": len(rows)})
    assert store.get_run(run_id).info.experiment_id == store.get_experiment_by_name("from-elsewhere").experiment_id
    assert not (elsewhere / "mlflow.db").exists() and not (elsewhere / "mlruns").exists()
    location = store.get_experiment_by_name("from-elsewhere").artifact_location
    assert Path(location).resolve().is_relative_to(project.root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("DVC_ROOT", str(project.root))
    assert tracking.tracking_uri(project.cfg) == f"sqlite:///{project.root.resolve() / 'mlflow.db'}"


def test_disabled_tracking_is_a_no_op_and_drops_a_stale_run_file(project, store, tmp_path):
    cfg = dataclasses.replace(project.cfg, tracking=TrackingConfig(enabled=False),
                              paths=PathsConfig(data=str(tmp_path / "data"), models=str(tmp_path / "models")))
    stale = tracking.run_info_path(cfg)
    io.write_json({"run_id": "old"}, stale)
    assert tracking.log_train(cfg, project.detector, project.table.head(5), {}) is None
    assert not stale.exists()
    assert tracking.log_detect(cfg, tmp_path, {}) is None


def test_metric_names_and_params_are_flat_and_secret_free():
    metrics = {"n_flagged": 3, "average_precision": float("nan"), "notes": ["x"], "recall_flagged/mass_clone": 1.0,
               "recall_top1pct/insider exfil": 0.5, "nested": {"a": 2}}
    assert tracking.flat_metrics(metrics) == {"n_flagged": 3.0, "recall_mass_clone": 1.0,
                                              "recall_top1pct_insider_exfil": 0.5, "nested_a": 2.0}
    from github_ueba.config import LogAnalyticsSource

    cfg = Config(source=LogAnalyticsSource(workspace_id="ws-secret-id"),
                 tracking=TrackingConfig(uri="sqlite:///u:p@x"))
    params = tracking.flat_params(cfg)
    assert params["source.name"] == "log_analytics" and "source.workspace_id" not in params
    assert "ws-secret-id" not in json.dumps(tracking.redacted_config(cfg))
    assert "u:p@x" not in json.dumps(tracking.redacted_config(cfg))
    assert tracking.artifact_root("sqlite:////srv/ml/mlflow.db") == "/srv/ml/mlruns"
    assert tracking.git_commit(Path(os.sep)) is None


def test_score_rebuilds_features_from_the_source_when_the_table_lacks_the_day(project, store, tmp_path):
    from conftest import TINY

    from github_ueba.config import load

    cfg = load(TINY + [f"paths.data={tmp_path / 'data'}", f"paths.models={tmp_path / 'models'}"])
    model_uri = f"models:/{cfg.tracking.registered_model}/{project.version}"
    (path,) = scoring.score(cfg, model_uri=model_uri)
    work = scoring.work_config(cfg, None)
    day = stages.read_window(work).end
    assert path == tmp_path / "data" / "score" / f"{day.isoformat()}.csv"
    rows = stages.load_features(work)
    rows = rows.loc[rows["day"] == pd.Timestamp(day)]
    got = pd.read_csv(path).set_index("actor")
    assert set(got.index) == set(rows["actor"]) and len(got) > 10
    expected = pd.Series(project.detector.anomaly_score(rows), index=rows["actor"].to_numpy())
    np.testing.assert_allclose(got.loc[expected.index, "anomaly_score"], expected, rtol=0, atol=1e-12)
    assert int(got["is_anomaly"].sum()) <= project.cfg.model.threshold.budget_per_day


def test_pseudonymize_replaces_whole_names_in_text_columns_too():
    frame = pd.DataFrame({"actor": ["alice", "bob[bot]"], "reasons": ["like bob[bot] and alice-2, alice", ""]})
    mapping = tracking.pseudonym_map(frame["actor"], b"k")
    out = tracking.pseudonymize(frame, mapping)
    assert list(out["actor"]) == [mapping["alice"], mapping["bob[bot]"]]
    assert out.loc[0, "reasons"] == f"like {mapping['bob[bot]']} and alice-2, {mapping['alice']}"
    assert mapping["alice"] == hmac.new(b"k", b"alice", hashlib.sha256).hexdigest()[:16]
