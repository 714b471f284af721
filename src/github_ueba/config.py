"""One loader and one validated schema for the whole configuration.

DVC stages read the committed `params.yaml`; the CLI composes `conf/` plus Hydra overrides. Both
go through `validate`, which merges the values onto the dataclass schema so that a wrong key, type
or range fails at start with the key, the value and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


@dataclass
class SimulatorSource:
    """Built-in simulated enterprise (`source=simulator`)."""

    name: str = "simulator"
    seed: int = 42
    end: str = "2026-11-30"  # last simulated UTC day (fixed so the demo is reproducible)
    days: int = 181  # simulated days ending at `end`
    n_developers: int = 150
    n_admins: int = 6
    n_bots: int = 6
    n_service_accounts: int = 3
    n_teams: int = 10
    repos_per_team: int = 8
    hires: int = 4  # developers who join during the window (org.add_member)
    leavers: int = 4  # benign leavers (org.remove_member)
    attacks_per_scenario: int = 2  # labelled attack instances per scenario kind
    benign_per_scenario: int = 2  # labelled benign look-alikes per kind
    attack_days: int = 44  # attacks fall in the last N days (detect + validation windows)
    org: str = "acme-corp"
    business: str = "acme"


@dataclass
class FilesSource:
    """GitHub audit-log export files (`source=files`)."""

    name: str = "files"
    path: str = "exports"  # a file, a folder, or a glob
    max_rejected_share: float = 0.5  # fail when more than this share of records is rejected


@dataclass
class LogAnalyticsSource:
    """Azure Log Analytics workspace holding the audit log (`source=log_analytics`)."""

    name: str = "log_analytics"
    workspace_id: Optional[str] = None  # default: env AZ_WORKSPACE_ID or .env
    endpoint: str = "https://api.loganalytics.io"
    preset: str = "gh_audit_logs_cl"  # gh_audit_logs_cl | github_audit_log_polling | github_audit_logs_v2
    table: Optional[str] = None  # default: the preset's table
    columns: dict[str, str] = field(default_factory=dict)  # canonical name -> workspace column
    use_saved_functions: bool = False
    chunk_days: int = 30
    server_timeout: int = 600
    max_rows: int = 500_000
    retry_total: int = 5


SOURCE_SCHEMAS: dict[str, type] = {
    "simulator": SimulatorSource,
    "files": FilesSource,
    "log_analytics": LogAnalyticsSource,
}


@dataclass
class WindowConfig:
    """Which days are read, used as history, and scored."""

    end: Optional[str] = None  # last day (YYYY-MM-DD); default: the source's last full UTC day
    lookback_days: int = 181  # days read, ending at `end`
    detect_days: int = 30  # last N days scored by `detect`
    validation_days: int = 14  # days before the detect window used by `tune` for validation


@dataclass
class FeaturesConfig:
    """Base and behaviour feature settings."""

    baseline_days: int = 60  # trailing window of the actor's own past days
    min_history_days: int = 10  # active days before a row counts as having a baseline
    clip_negative_z: bool = True  # paper: negative z-scores clipped to 0
    new_repo_days: int = 14  # a repo is "new" for an actor within N days of first access
    sustained_days: int = 7  # recent_first_seen_repos: repos first accessed over the last N days
    off_hours_z: float = 3.0  # |z| of hour-of-day above which an event is off-hours
    bot_patterns: list[str] = field(
        default_factory=lambda: [r"\[bot\]$", r"^dependabot", r"^github-actions", r"-bot$", r"^svc-"]
    )
    bots: str = "score"  # score | drop: bots are never trained on; scored separately or dropped
    deploy_key_share: float = 0.95  # an actor with at least this share of deploy-key events is a bot


@dataclass
class ThresholdConfig:
    """How scores become flags."""

    policy: str = "budget"  # fixed | contamination | budget
    cutoff: float = -0.32  # fixed: flag when decision_function < cutoff (paper)
    budget_per_day: int = 3  # budget: top k actor-days per day


@dataclass
class ModelConfig:
    """The scikit-learn IsolationForest pipeline and its threshold policy."""

    name: str = "isolation_forest"
    feature_set: str = "full"  # full (compact) | wide (every count and z) | paper
    log_transform: bool = True
    train_on_bots: bool = False
    n_estimators: int = 300
    max_samples: Any = "auto"  # "auto", an int, or a float in (0, 1]
    contamination: Any = "auto"  # "auto" or a float in (0, 0.5]
    max_features: float = 1.0
    bootstrap: bool = False
    random_state: int = 42
    n_jobs: Optional[int] = None
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)


@dataclass
class TrackingConfig:
    """MLflow tracking and registry."""

    enabled: bool = True
    uri: Optional[str] = None  # default: env MLFLOW_TRACKING_URI, else sqlite:///<repo>/mlflow.db
    experiment: str = "github-ueba"
    registered_model: str = "github-ueba"
    pseudonymize_actors: bool = False


@dataclass
class TuneConfig:
    """Optuna study settings."""

    n_trials: int = 30
    timeout: Optional[int] = None
    study_name: str = "github-ueba"
    storage: str = "sqlite:///optuna.db"
    objective: str = "auto"  # auto | average_precision | flag_f1 | pareto | excess_mass
    sampler_seed: int = 42
    search_space: dict[str, Any] = field(default_factory=dict)


@dataclass
class PathsConfig:
    """Where stages read and write (relative to the working directory)."""

    data: str = "data"
    models: str = "models"


@dataclass
class Config:
    """The whole composed configuration."""

    source: Any = field(default_factory=SimulatorSource)
    window: WindowConfig = field(default_factory=WindowConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 42


def _format_error(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    msg = str(err).splitlines()[0]
    return f"config key '{key}': {msg}" if key else f"config: {msg}"


def _check_ranges(cfg: Config) -> None:
    problems: list[str] = []
    m, w, f = cfg.model, cfg.window, cfg.features
    if isinstance(m.contamination, str):
        if m.contamination != "auto":
            problems.append(f"model.contamination={m.contamination!r}: expected 'auto' or a float in (0, 0.5]")
    elif not 0 < float(m.contamination) <= 0.5:
        problems.append(f"model.contamination={m.contamination}: expected a float in (0, 0.5]")
    if m.n_estimators < 1:
        problems.append(f"model.n_estimators={m.n_estimators}: expected >= 1")
    if isinstance(m.max_samples, str):
        if m.max_samples != "auto":
            problems.append(f"model.max_samples={m.max_samples!r}: expected 'auto', an int >= 1 or a float in (0, 1]")
    elif isinstance(m.max_samples, float) and not 0 < m.max_samples <= 1:
        problems.append(f"model.max_samples={m.max_samples}: expected a float in (0, 1]")
    elif isinstance(m.max_samples, int) and m.max_samples < 1:
        problems.append(f"model.max_samples={m.max_samples}: expected an int >= 1")
    if not 0 < m.max_features <= 1:
        problems.append(f"model.max_features={m.max_features}: expected a float in (0, 1]")
    if m.feature_set not in ("full", "wide", "paper"):
        problems.append(f"model.feature_set={m.feature_set!r}: expected 'full', 'wide' or 'paper'")
    if m.threshold.policy not in ("fixed", "contamination", "budget"):
        problems.append(f"model.threshold.policy={m.threshold.policy!r}: expected fixed, contamination or budget")
    if m.threshold.budget_per_day < 1:
        problems.append(f"model.threshold.budget_per_day={m.threshold.budget_per_day}: expected >= 1")
    for key in ("lookback_days", "detect_days"):
        if getattr(w, key) < 1:
            problems.append(f"window.{key}={getattr(w, key)}: expected a positive number of days")
    if w.validation_days < 0:
        problems.append(f"window.validation_days={w.validation_days}: expected >= 0")
    if w.detect_days + w.validation_days >= w.lookback_days:
        problems.append(
            f"window.detect_days + window.validation_days = {w.detect_days + w.validation_days} must be "
            f"smaller than window.lookback_days = {w.lookback_days} (training needs earlier days)"
        )
    if w.end is not None:
        try:
            import datetime as _dt

            _dt.date.fromisoformat(w.end)
        except ValueError:
            problems.append(f"window.end={w.end!r}: expected a date YYYY-MM-DD")
    for key in ("baseline_days", "min_history_days", "new_repo_days", "sustained_days"):
        if getattr(f, key) < 1:
            problems.append(f"features.{key}={getattr(f, key)}: expected >= 1")
    if not 0 < f.deploy_key_share <= 1:
        problems.append(f"features.deploy_key_share={f.deploy_key_share}: expected a share in (0, 1]")
    if f.bots not in ("score", "drop"):
        problems.append(f"features.bots={f.bots!r}: expected 'score' or 'drop'")
    if problems:
        raise ConfigError("; ".join(problems))


def validate(raw: DictConfig | dict) -> Config:
    """Merge raw values onto the schema and check ranges; return a typed `Config` object."""
    raw_cfg = raw if isinstance(raw, DictConfig) else OmegaConf.create(raw)
    raw_cfg = OmegaConf.to_container(raw_cfg, resolve=True)  # type: ignore[assignment]
    assert isinstance(raw_cfg, dict)
    source_raw = dict(raw_cfg.pop("source", None) or {"name": "simulator"})
    source_name = source_raw.get("name", "simulator")
    if source_name not in SOURCE_SCHEMAS:
        raise ConfigError(f"config key 'source.name': {source_name!r} is not one of {sorted(SOURCE_SCHEMAS)}")
    try:
        source = OmegaConf.merge(OmegaConf.structured(SOURCE_SCHEMAS[source_name]), source_raw)
        merged = OmegaConf.merge(OmegaConf.structured(Config), raw_cfg)
        merged.source = source
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(_format_error(err)) from None
    assert isinstance(cfg, Config)
    _check_ranges(cfg)
    return cfg


def conf_dir() -> Path:
    """The `conf/` folder: env GITHUB_UEBA_CONF, else `./conf`, else the repo's own."""
    env = os.environ.get("GITHUB_UEBA_CONF")
    if env:
        return Path(env).resolve()
    local = Path.cwd() / "conf"
    if (local / "config.yaml").exists():
        return local.resolve()
    return (Path(__file__).resolve().parents[2] / "conf").resolve()


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose `conf/config.yaml` with Hydra overrides (`source=files source.path=x`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
            composed = hydra_compose(config_name="config", overrides=list(overrides or []))
    except HydraException as err:
        raise ConfigError(f"config overrides {list(overrides or [])}: {err}") from None
    composed = OmegaConf.to_container(composed, resolve=True)
    return OmegaConf.create(composed)  # type: ignore[return-value]


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Config:
    """Read the composed `params.yaml` (what DVC stages use), with optional dotlist overrides."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: not found (run from the repo root, or `dvc exp run` to compose conf/)")
    raw = OmegaConf.load(p)
    if overrides:
        raw = OmegaConf.merge(raw, OmegaConf.from_dotlist(list(overrides)))
    return validate(raw)


def load(overrides: list[str] | None = None, params: str | None = None) -> Config:
    """The CLI's loader: `params.yaml` when given, else `conf/` composed with overrides."""
    if params:
        return load_params(params, overrides)
    return validate(compose(overrides))


def to_dict(cfg: Config) -> dict[str, Any]:
    """A plain dict of the config (for logging and params files)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]
