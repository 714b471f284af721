"""MLflow runs, artifacts, model registry and promotion for the train and detect stages.

One experiment; `train` opens a run with the flattened config, training metrics and the model
(a custom pyfunc registered under `tracking.registered_model`); `detect` adds its metrics and
tables to the same run and tags it `has_detect_metrics=true`, which `promote` requires before it
moves the `champion` alias. Actor names can be pseudonymized (HMAC) in every logged table.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import json
import logging
import math
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from github_ueba import io
from github_ueba.config import Config, to_dict
from github_ueba.errors import UebaError

log = logging.getLogger(__name__)

CHAMPION = "champion"
PSEUDONYM_KEY_ENV = "GITHUB_UEBA_PSEUDONYM_KEY"
DETECT_TAG = "has_detect_metrics"
#: Config key names never logged, at any depth (their values stay out of params and artifacts).
SECRET_KEY = re.compile(r"secret|token|password|passwd|credential|api_?key|connection_string|workspace_id", re.I)
#: Config sections logged as run params.
PARAM_SECTIONS = ("source", "window", "features", "model")
SCORE_QUANTILES = {"p01": 0.01, "p10": 0.10, "p50": 0.50, "p90": 0.90, "p99": 0.99}


class TrackingError(UebaError):
    """MLflow store, registry or promotion problem (missing model, version, alias or key)."""


# ------------------------------------------------------------------------------------ the store


def tracking_uri(cfg: Config) -> str:
    """`tracking.uri`, else env MLFLOW_TRACKING_URI, else `sqlite:///<abs>/mlflow.db`.

    The fallback folder is env DVC_ROOT when set (DVC sets it to the parent repo for queued
    experiments, which run in a temp copy), else the working directory; always absolute.
    """
    if cfg.tracking.uri:
        return cfg.tracking.uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    root = Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def artifact_root(uri: str) -> str | None:
    """For a sqlite store, `<db folder>/mlruns` (absolute); None lets MLflow pick for others."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    db_path = Path(unquote(parsed.path)).resolve()
    return str(db_path.parent / "mlruns")


def use_store(cfg: Config) -> str:
    """Point MLflow's tracking and registry at the configured store; return its URI."""
    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def connect(cfg: Config) -> str:
    """Use the store, create the experiment (artifacts next to a sqlite DB) if needed; return its id."""
    uri = use_store(cfg)
    name = cfg.tracking.experiment
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        root = artifact_root(uri)
        location = f"{root}/{_slug(name)}" if root else None
        try:
            experiment_id = mlflow.create_experiment(name, artifact_location=location)
        except MlflowException:
            experiment = mlflow.get_experiment_by_name(name)  # created meanwhile by a parallel run
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"


# ------------------------------------------------------------------------------ params and tags


def _flatten(node: Any, prefix: str) -> dict[str, Any]:
    if isinstance(node, dict):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: node}


def redacted_config(cfg: Config) -> dict[str, Any]:
    """The composed config without secret-looking keys and without `tracking.uri` (may hold credentials)."""

    def scrub(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: scrub(v) for k, v in node.items() if not SECRET_KEY.search(str(k))}
        return node

    config = scrub(to_dict(cfg))
    config.get("tracking", {}).pop("uri", None)
    return config


def flat_params(cfg: Config) -> dict[str, str]:
    """Run params: window.*, features.*, model.* (incl. threshold), non-secret source.*, seed."""
    config = redacted_config(cfg)
    flat = _flatten({section: config[section] for section in PARAM_SECTIONS}, "")
    flat["seed"] = config["seed"]
    return {key: json.dumps(value) if isinstance(value, (list, dict)) else str(value) for key, value in flat.items()}


def git_commit(start: Path | None = None) -> str | None:
    """The checked-out commit of the git repo holding `start` (read from .git, no git process)."""
    folder = (start or Path.cwd()).resolve()
    git_dir = next((p / ".git" for p in (folder, *folder.parents) if (p / ".git").exists()), None)
    if git_dir is None:
        return None
    if git_dir.is_file():
        git_dir = (git_dir.parent / git_dir.read_text().split("gitdir:", 1)[-1].strip()).resolve()
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        common = git_dir / "commondir"
        roots = [git_dir] + ([(git_dir / common.read_text().strip()).resolve()] if common.exists() else [])
        for root in roots:
            if (root / ref).exists():
                return (root / ref).read_text().strip()
            packed = root / "packed-refs"
            if packed.exists():
                hits = [line.split()[0] for line in packed.read_text().splitlines() if line.endswith(f" {ref}")]
                if hits:
                    return hits[0]
    except OSError:
        return None
    return None


def _run_tags(cfg: Config, stage: str) -> dict[str, str]:
    tags = {"stage": stage, "source": cfg.source.name, "feature_set": cfg.model.feature_set}
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


def metric_name(key: str) -> str:
    """An MLflow-friendly metric name: `recall_flagged/<scenario>` → `recall_<scenario>`, other `/` → `_`."""
    name = re.sub(r"^recall_flagged/", "recall_", key).replace("/", "_")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a metrics dict (nested dicts flattened with `_`), under `metric_name`s."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flat_metrics({f"{key}_{sub}": sub_value for sub, sub_value in value.items()}, prefix))
        elif isinstance(value, (bool, int, float, np.integer, np.floating)) and math.isfinite(float(value)):
            flat[metric_name(f"{prefix}{key}")] = float(value)
    return flat


def score_quantiles(scores: np.ndarray | pd.Series, prefix: str = "score_") -> dict[str, float]:
    """Quantiles, mean and max of anomaly scores as flat metrics."""
    values = np.asarray(scores, dtype="float64")
    if values.size == 0:
        return {}
    out = {f"{prefix}{name}": float(np.quantile(values, q)) for name, q in SCORE_QUANTILES.items()}
    out.update({f"{prefix}mean": float(values.mean()), f"{prefix}max": float(values.max())})
    return out


# ----------------------------------------------------------------------------------------- train


def run_info_path(cfg: Config) -> Path:
    """`<paths.data>/train/mlflow.json`: the train run id and model version, for detect."""
    return Path(cfg.paths.data) / "train" / "mlflow.json"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def widened(frame: pd.DataFrame) -> pd.DataFrame:
    """Integers as int64 and floats as float64 (bools kept), so the signature accepts JSON numbers.

    MLflow's schema check refuses narrowing (float64 → float32, int64 → int32) and int → double,
    so the signature declares the widest type of each kind; int32/float32 tables still upcast.
    """
    types = pd.api.types
    numeric = [c for c, t in frame.dtypes.items() if types.is_numeric_dtype(t) and not types.is_bool_dtype(t)]
    return frame.astype({c: "int64" if types.is_integer_dtype(frame[c]) else "float64" for c in numeric})


def pip_requirements() -> list[str]:
    """Pinned requirements of the served model: the project package and what its joblib detector needs."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("github-ueba", "mlflow", "scikit-learn", "pandas", "numpy", "scipy", "joblib"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def _log_model(cfg: Config, detector: Any, rows: pd.DataFrame, model_file: Path) -> Any:
    from mlflow.models import infer_signature

    from github_ueba.serving import DETECTOR_ARTIFACT, MODEL_CODE, SERVING_ARTIFACT, predict_frame, serving_spec

    feature_names = [str(name) for name in detector.feature_names_in_]
    spec = serving_spec(cfg.model.threshold, feature_names)
    example = widened(rows[feature_names].head(5).reset_index(drop=True))
    with warnings.catch_warnings():  # features never hold missing values: integer columns are safe
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = infer_signature(example, predict_frame(detector, example, spec))
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, code_file = Path(tmp) / "serving.json", Path(tmp) / "ueba_model.py"
        spec_file.write_text(json.dumps(spec, indent=2))
        code_file.write_text(MODEL_CODE)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code_file),
            artifacts={DETECTOR_ARTIFACT: str(model_file), SERVING_ARTIFACT: str(spec_file)},
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            registered_model_name=cfg.tracking.registered_model,
            metadata={k: spec[k] for k in ("served_rule", "score_cutoff", "threshold")},
        )


def log_train(cfg: Config, detector: Any, rows: pd.DataFrame, metrics: dict[str, Any],
              scores: np.ndarray | None = None) -> str | None:
    """Log a train run (params, metrics, features, config, registered pyfunc model); return its id.

    Call after `models/model.joblib` is written. Writes `<data>/train/mlflow.json` for `log_detect`.
    A no-op returning None when `tracking.enabled` is false (a stale mlflow.json is removed).
    """
    from github_ueba.stages import model_path

    info_path = run_info_path(cfg)
    if not cfg.tracking.enabled:
        info_path.unlink(missing_ok=True)
        return None
    model_file = model_path(cfg)
    if not model_file.exists():
        raise TrackingError(f"{model_file}: missing; log_train must run after the model is written")
    experiment_id = connect(cfg)
    scores = detector.anomaly_score(rows) if scores is None else scores
    run_metrics = {**flat_metrics({k if k.startswith("train_") else f"train_{k}": v for k, v in metrics.items()}),
                   **score_quantiles(scores, "train_score_")}
    with mlflow.start_run(experiment_id=experiment_id, run_name=os.environ.get("DVC_EXP_NAME")) as run:
        mlflow.set_tags(_run_tags(cfg, "train"))
        mlflow.log_params(flat_params(cfg))
        mlflow.log_metrics(run_metrics)
        mlflow.log_dict({"features": [str(n) for n in detector.feature_names_in_]}, "features.json")
        mlflow.log_text(yaml.safe_dump(redacted_config(cfg), sort_keys=False), "params.yaml")
        model_info = _log_model(cfg, detector, rows, model_file)
        version = model_info.registered_model_version
        if version is not None:
            mlflow.set_tag("model_version", str(version))
        run_id = run.info.run_id
    io.write_json(
        {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "model_uri": model_info.model_uri,
            "registered_model": cfg.tracking.registered_model,
            "model_version": None if version is None else str(version),
            "model_sha256": _file_sha256(model_file),
        },
        info_path,
    )
    log.info("mlflow: train run %s, %s version %s", run_id, cfg.tracking.registered_model, version)
    return run_id


# ---------------------------------------------------------------------------------------- detect


def pseudonym_key() -> bytes:
    """The HMAC key for actor pseudonyms, from env GITHUB_UEBA_PSEUDONYM_KEY."""
    key = os.environ.get(PSEUDONYM_KEY_ENV, "")
    if not key:
        raise TrackingError(
            f"tracking.pseudonymize_actors=true needs the env variable {PSEUDONYM_KEY_ENV} "
            "(a secret, e.g. `openssl rand -hex 32`); set it or set tracking.pseudonymize_actors=false"
        )
    return key.encode()


def pseudonym_map(actors: pd.Series, key: bytes) -> dict[str, str]:
    """Actor name → first 16 hex chars of HMAC-SHA256(key, name), for each distinct actor."""
    names = pd.unique(actors.dropna().astype(str))
    return {name: hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:16] for name in names}


def pseudonymize(frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """Replace actor names: the `actor` column by pseudonyms, and whole-name mentions in text columns."""
    out = frame.copy()
    if "actor" in out:
        out["actor"] = out["actor"].astype(str).map(mapping).fillna(out["actor"].astype(str))
    text_columns = [c for c in out.columns if c != "actor" and pd.api.types.is_string_dtype(out[c])]
    if text_columns and mapping:
        names = "|".join(re.escape(name) for name in sorted(mapping, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.\[-])({names})(?![\w\[-])")
        for column in text_columns:
            out[column] = out[column].str.replace(pattern, lambda m: mapping[m.group(1)], regex=True)
    return out


def _train_run(cfg: Config, client: MlflowClient) -> tuple[Any, dict[str, Any]] | None:
    """The train run that produced the current model file, if it is in this store."""
    from github_ueba.stages import model_path

    info_path = run_info_path(cfg)
    if not info_path.exists():
        return None
    info = io.read_json(info_path)
    model_file = model_path(cfg)
    if not model_file.exists() or info.get("model_sha256") != _file_sha256(model_file):
        log.warning("mlflow: %s does not describe %s; logging detect to a new run", info_path, model_file)
        return None
    try:
        return client.get_run(info["run_id"]), info
    except MlflowException:
        log.warning("mlflow: train run %s is not in this store; logging detect to a new run", info["run_id"])
        return None


def _detect_tables(detect_dir: Path) -> dict[str, pd.DataFrame]:
    """The detect CSVs present in `detect_dir` (scores.csv, anomalies.csv), read once for metrics and artifacts."""
    names = [name for name in ("scores.csv", "anomalies.csv") if (detect_dir / name).exists()]
    return {name: pd.read_csv(detect_dir / name) for name in names}


def _detect_artifacts(cfg: Config, detect_dir: Path, tables: dict[str, pd.DataFrame], staging: Path) -> Path:
    """Stage the detect tables (pseudonymized if configured), plots, quality.json, metrics.json and the config."""
    if cfg.tracking.pseudonymize_actors:
        key = pseudonym_key()
        mapping = pseudonym_map(pd.concat([t["actor"] for t in tables.values() if "actor" in t]), key)
        tables = {name: pseudonymize(table, mapping) for name, table in tables.items()}
    out = staging / "detect"
    out.mkdir(parents=True)
    for name, table in tables.items():
        table.to_csv(out / name, index=False)
    plots = detect_dir / "plots"
    if plots.is_dir():
        (out / "plots").mkdir()
        for plot in plots.glob("*.csv"):
            shutil.copyfile(plot, out / "plots" / plot.name)
    for source in (Path(cfg.paths.data) / "ingest" / "quality.json", detect_dir / "metrics.json"):
        if source.exists():
            shutil.copyfile(source, out / source.name)
    (out / "params.yaml").write_text(yaml.safe_dump(redacted_config(cfg), sort_keys=False))
    return out


def _detect_metrics(tables: dict[str, pd.DataFrame], metrics: dict[str, Any]) -> dict[str, float]:
    renamed = {("detect_seconds" if k == "seconds" else k): v for k, v in metrics.items()}
    flat = flat_metrics(renamed)
    if "scores.csv" in tables:
        flat.update(score_quantiles(tables["scores.csv"]["anomaly_score"]))
    if "anomalies.csv" in tables:
        flat["n_anomalies"] = float(len(tables["anomalies.csv"]))
    return flat


def log_detect(cfg: Config, detect_dir: str | Path, metrics: dict[str, Any]) -> str | None:
    """Log detect metrics and tables to the model's train run and tag it `has_detect_metrics=true`.

    When the threshold differs from the train run's params, a nested `detect` run holds them
    instead; without a matching train run (tracking was off, other store), a standalone run.
    Returns the run id the metrics went to, or None when tracking is disabled.
    """
    if not cfg.tracking.enabled:
        return None
    if cfg.tracking.pseudonymize_actors:
        pseudonym_key()
    detect_dir = Path(detect_dir)
    experiment_id = connect(cfg)
    client = MlflowClient()
    params = flat_params(cfg)
    tables = _detect_tables(detect_dir)
    run_metrics = _detect_metrics(tables, metrics)
    found = _train_run(cfg, client)
    with tempfile.TemporaryDirectory() as tmp:
        staged = _detect_artifacts(cfg, detect_dir, tables, Path(tmp))
        if found is None:
            with mlflow.start_run(experiment_id=experiment_id, run_name="detect") as run:
                mlflow.set_tags({**_run_tags(cfg, "detect"), DETECT_TAG: "true"})
                mlflow.log_params(params)
                return _log_detect_run(run.info.run_id, run_metrics, staged)
        train_run, info = found
        threshold = {k: v for k, v in params.items() if k.startswith("model.threshold.")}
        same_threshold = all(train_run.data.params.get(k) == v for k, v in threshold.items())
        with mlflow.start_run(run_id=train_run.info.run_id):
            mlflow.set_tag(DETECT_TAG, "true")
            if same_threshold:
                return _log_detect_run(train_run.info.run_id, run_metrics, staged)
            tags = {**_run_tags(cfg, "detect"), DETECT_TAG: "true", "model_version": str(info.get("model_version"))}
            with mlflow.start_run(run_name="detect", nested=True, tags=tags) as child:
                mlflow.log_params(threshold)
                return _log_detect_run(child.info.run_id, run_metrics, staged)


def _log_detect_run(run_id: str, run_metrics: dict[str, float], staged: Path) -> str:
    mlflow.log_metrics(run_metrics)
    mlflow.log_artifacts(str(staged), artifact_path="detect")
    log.info("mlflow: detect metrics logged to run %s", run_id)
    return run_id


# -------------------------------------------------------------------------- registry, promotion


def _registered_versions(client: MlflowClient, name: str, uri: str) -> list[ModelVersion]:
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise TrackingError(
            f"registered model '{name}' (tracking.registered_model) has no versions in {uri}; "
            "run `github-ueba train` with tracking.enabled=true first"
        )
    return sorted(versions, key=lambda v: int(v.version))


def choose_version(cfg: Config, version: int | str | None = None, run_id: str | None = None) -> ModelVersion:
    """A registered version: the given number, else the latest of `run_id`, else the latest overall."""
    use_store(cfg)
    client = MlflowClient()
    name = cfg.tracking.registered_model
    versions = _registered_versions(client, name, tracking_uri(cfg))
    if version is not None:
        chosen = [v for v in versions if str(v.version) == str(version)]
        if not chosen:
            raise TrackingError(f"model '{name}' has no version {version}; versions: {[v.version for v in versions]}")
        return chosen[0]
    if run_id is not None:
        chosen = [v for v in versions if v.run_id == run_id]
        if not chosen:
            raise TrackingError(f"model '{name}' has no version logged by run {run_id}")
        return chosen[-1]
    return versions[-1]


def promote(
    cfg: Config,
    version: int | str | None = None,
    run_id: str | None = None,
    force: bool = False,
    reason: str = "",
    who: str | None = None,
) -> ModelVersion:
    """Point the `champion` alias at a version whose run has detect metrics (or any, with `force`)."""
    chosen = choose_version(cfg, version, run_id)
    client = MlflowClient()
    name = cfg.tracking.registered_model
    tags = client.get_run(chosen.run_id).data.tags if chosen.run_id else {}
    has_detect = tags.get(DETECT_TAG) == "true"
    if not has_detect and not force:
        raise TrackingError(
            f"model '{name}' version {chosen.version} (run {chosen.run_id}) has no detect metrics; "
            "run `github-ueba detect` (or `dvc repro`) with tracking on first, or promote with --force"
        )
    client.set_registered_model_alias(name, CHAMPION, chosen.version)
    version_tags = {
        "promoted_by": who or os.environ.get("USER") or getpass.getuser(),
        "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "promotion_reason": reason,
        "promoted_without_detect_metrics": str(not has_detect).lower(),
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(name, chosen.version, key, value)
    log.info("mlflow: %s version %s is now @%s", name, chosen.version, CHAMPION)
    return client.get_model_version(name, chosen.version)


def champion_uri(cfg: Config) -> str:
    """`models:/<registered_model>@champion`."""
    return f"models:/{cfg.tracking.registered_model}@{CHAMPION}"


def load_champion(cfg: Config, model_uri: str | None = None) -> mlflow.pyfunc.PyFuncModel:
    """Load the promoted pyfunc (or `model_uri`) from the configured store."""
    use_store(cfg)
    uri = model_uri or champion_uri(cfg)
    try:
        return mlflow.pyfunc.load_model(uri)
    except MlflowException as err:
        hint = " (promote a version first: `github-ueba promote`)" if model_uri is None else ""
        raise TrackingError(f"cannot load model {uri} from {tracking_uri(cfg)}: {err.message}{hint}") from None
