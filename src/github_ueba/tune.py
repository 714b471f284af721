"""`github-ueba tune`: an Optuna study over the detector's config, every trial a nested MLflow run.

Each trial turns the sampler's values into Hydra overrides, composes and validates the config (a bad
combination fails that trial only), trains on the days before `window.validation_start` and scores the
held-out validation window [validation_start, detect_start) — never the detect window. The best
trial's model settings are written to `conf/model/tuned.yaml` (`github-ueba train model=tuned`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import optuna
import pandas as pd

from github_ueba import io, stages
from github_ueba.config import Config, ConfigError, conf_dir, load, to_dict
from github_ueba.errors import InputError, UebaError
from github_ueba.window import Window

log = logging.getLogger(__name__)

OBJECTIVES = ("auto", "average_precision", "flag_f1", "pareto", "excess_mass")
#: Objectives that depend only on the order of the scores (thresholds cannot change them).
RANKING_OBJECTIVES = frozenset({"average_precision", "excess_mass"})
#: Directions and value names per objective.
DIRECTIONS: dict[str, list[str]] = {
    "average_precision": ["maximize"],
    "flag_f1": ["maximize"],
    "excess_mass": ["maximize"],
    "pareto": ["maximize", "minimize"],
}
VALUE_NAMES: dict[str, list[str]] = {
    "average_precision": ["average_precision"],
    "flag_f1": ["flag_f1"],
    "excess_mass": ["excess_mass"],
    "pareto": ["average_precision", "flagged_per_day"],
}
#: Analyst feedback labels and the scenario name they become (`benign_*` = a negative).
FEEDBACK_SCENARIOS = {"true_positive": "feedback", "false_positive": "benign_feedback"}
#: Exceptions that fail one trial (recorded as FAILED) instead of the whole study.
TRIAL_ERRORS = (ValueError, UebaError)
#: Excess-Mass: the curve is integrated while EM(t) stays above this mass (Goix 2016 uses 0.9).
EM_T_MAX = 0.9
EM_UNIFORM_SAMPLES = 10_000
EM_SUBSETS = 8  # feature subsets averaged (in many dimensions the bounding box is almost all empty space)
EM_SUBSET_SIZE = 5


# ---------------------------------------------------------------------------------- search space


@dataclass(frozen=True)
class ParamSpec:
    """One searched config key (dotted, e.g. `model.n_estimators`) and its Optuna distribution."""

    name: str
    type: str  # int | float | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        """Ask the trial for a value of this key."""
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        if self.type == "float":
            return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log, step=self.step)
        return trial.suggest_categorical(self.name, list(self.choices))


def _spec(name: str, node: dict[str, Any]) -> ParamSpec:
    where = f"tune.search_space.{name}"
    kind = node.get("type")
    unknown = sorted(set(node) - {"type", "low", "high", "log", "step", "choices"})
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (expected type, low, high, log, step, choices)")
    if kind == "categorical":
        choices = node.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ConfigError(f"{where}: categorical needs a non-empty list `choices`")
        return ParamSpec(name, "categorical", choices=tuple(choices))
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}.type={kind!r}: expected int, float or categorical")
    low, high = node.get("low"), node.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
        raise ConfigError(f"{where}: {kind} needs numbers low < high (got low={low!r}, high={high!r})")
    log_scale = bool(node.get("log", False))
    if log_scale and low <= 0:
        raise ConfigError(f"{where}: log scale needs low > 0 (got {low})")
    step = node.get("step")
    if step is not None and log_scale:
        raise ConfigError(f"{where}: `step` and `log: true` exclude each other")
    return ParamSpec(name, kind, low=low, high=high, log=log_scale, step=step)


def parse_search_space(raw: dict[str, Any], prefix: str = "") -> list[ParamSpec]:
    """Specs from `tune.search_space`: nested or dotted keys down to a node with `type` (sorted by key)."""
    specs: list[ParamSpec] = []
    for key, node in (raw or {}).items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if not isinstance(node, dict):
            raise ConfigError(f"tune.search_space.{name}: expected a mapping with `type`, got {node!r}")
        specs.extend([_spec(name, node)] if "type" in node else parse_search_space(node, name))
    return sorted(specs, key=lambda s: s.name)


def inert_keys(objective: str, policy: str) -> dict[str, str]:
    """Config keys that cannot change `objective` under threshold `policy`, with the reason."""
    if objective in RANKING_OBJECTIVES:
        why = (
            f"{objective} depends only on the ranking of anomaly scores; contamination and the "
            "threshold only move the flag cut-off (a constant shift of every score)"
        )
        inert = {"model.contamination": why, "model.threshold": why}
        if objective == "excess_mass":
            inert["features"] = (
                "excess_mass compares models on one feature space; features.* change that space (and its "
                "volume), so their trials would not be comparable"
            )
        return inert
    inert = {}
    if policy != "fixed":
        inert["model.threshold.cutoff"] = f"model.threshold.policy={policy} ignores the cutoff"
    if policy != "budget":
        inert["model.threshold.budget_per_day"] = f"model.threshold.policy={policy} ignores the daily budget"
    return inert


def _is_under(name: str, key: str) -> bool:
    return name == key or name.startswith(key + ".")


def active_specs(specs: list[ParamSpec], objective: str, policy: str) -> list[ParamSpec]:
    """Drop the specs `inert_keys` names (logging why), so the sampler does not waste trials on them."""
    inert = inert_keys(objective, policy)
    kept = []
    for spec in specs:
        reason = next((why for key, why in inert.items() if _is_under(spec.name, key)), None)
        if reason:
            log.info("tune: not searching %s: %s", spec.name, reason)
        else:
            kept.append(spec)
    return kept


def unpinned_specs(specs: list[ParamSpec], overrides: list[str]) -> list[ParamSpec]:
    """Drop the specs whose key the command line sets (`model.n_estimators=50` pins it for the study).

    Group selections such as `model=paper` pin nothing: the study then tunes that model config.
    """
    pinned = {key for key in map(_override_key, overrides) if "." in key}
    kept = [s for s in specs if not any(_is_under(s.name, key) for key in pinned)]
    for spec in set(specs) - set(kept):
        log.info("tune: not searching %s: pinned by an override", spec.name)
    return kept


def hydra_value(value: Any) -> str:
    """A value as Hydra override text (`true`, `null`, `0.05`, `auto`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


# ------------------------------------------------------------------------------------- labels


def feedback_path(cfg: Config) -> Path:
    """Where an analyst's verdicts on past flags live: `<paths.data>/labels/feedback.csv`."""
    return Path(cfg.paths.data) / "labels" / "feedback.csv"


def read_feedback(path: str | Path) -> pd.DataFrame:
    """Read `actor,day,label` (label true_positive | false_positive) as `actor, day, scenario` labels."""
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a CSV with header actor,day,label ({err})") from None
    missing = [c for c in ("actor", "day", "label") if c not in raw.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing} (expected header actor,day,label)")
    line = pd.Series(np.arange(2, len(raw) + 2), index=raw.index)
    label = raw["label"].str.strip().str.lower()
    bad_label = ~label.isin(list(FEEDBACK_SCENARIOS))
    if bad_label.any():
        first = bad_label.idxmax()
        raise InputError(
            f"{path}:{line[first]}: label {raw.at[first, 'label']!r} is not one of {sorted(FEEDBACK_SCENARIOS)}"
        )
    day = pd.to_datetime(raw["day"].str.strip(), format="%Y-%m-%d", errors="coerce")
    bad = day.isna() | (raw["actor"].str.strip() == "")
    if bad.any():
        first = bad.idxmax()
        raise InputError(f"{path}:{line[first]}: need an actor and a day YYYY-MM-DD (got {raw.loc[first].to_dict()})")
    return pd.DataFrame({"actor": raw["actor"].str.strip(), "day": day, "scenario": label.map(FEEDBACK_SCENARIOS)})


def load_labels(cfg: Config) -> pd.DataFrame | None:
    """Simulator labels merged with the analyst feedback file (feedback wins on the same actor-day)."""
    parts = [stages.labelled(cfg)]
    path = feedback_path(cfg)
    if path.exists():
        parts.append(read_feedback(path))
    parts = [p[["actor", "day", "scenario"]] for p in parts if p is not None and len(p)]
    if not parts:
        return None
    labels = pd.concat(parts, ignore_index=True)
    labels["day"] = pd.to_datetime(labels["day"])
    return labels.drop_duplicates(["actor", "day"], keep="last").reset_index(drop=True)


def _in_window(frame: pd.DataFrame, window: Window) -> pd.Series:
    return (frame["day"] >= pd.Timestamp(window.validation_start)) & (frame["day"] < pd.Timestamp(window.detect_start))


def positives_in_validation(labels: pd.DataFrame | None, window: Window) -> int:
    """Labelled attack actor-days (not `benign_*`) inside the validation window."""
    if labels is None:
        return 0
    positive = ~labels["scenario"].astype(str).str.startswith("benign_")
    return int((positive & _in_window(labels, window)).sum())


def resolve_objective(requested: str, labels: pd.DataFrame | None, window: Window) -> str:
    """`auto` → average_precision when the validation window holds labelled attacks, else excess_mass."""
    if requested not in OBJECTIVES:
        raise ConfigError(f"tune.objective={requested!r}: expected one of {', '.join(OBJECTIVES)}")
    positives = positives_in_validation(labels, window)
    if requested == "auto":
        chosen = "average_precision" if positives else "excess_mass"
        log.info("tune: objective auto -> %s (%d labelled attack actor-days in the validation window)",
                 chosen, positives)
        return chosen
    if requested in ("average_precision", "flag_f1", "pareto") and not positives:
        raise InputError(
            f"tune.objective={requested} needs labelled attacks in the validation window "
            f"{window.validation_start}..{window.detect_start} (simulator labels or "
            "<paths.data>/labels/feedback.csv); "
            "none found: use tune.objective=excess_mass, or with the simulator set "
            "source.attack_days >= window.detect_days + window.validation_days"
        )
    return requested


# -------------------------------------------------------------------------------- excess mass


def excess_mass_area(normal_scores: np.ndarray, uniform_scores: np.ndarray, t_max: float = EM_T_MAX,
                     n_grid: int = 400, max_levels: int = 2000) -> float:
    """Area under the Excess-Mass curve (Goix 2016) of a scoring function; higher = better.

    Scores: higher = more normal. `uniform_scores` are the scores of points drawn uniformly in the data's
    bounding box, so the volume of a level set {s >= u} is (box volume) × q(u), q = share of uniform
    points at or above u. With t measured in units of 1 / box volume, EM(t) = max_u [P(s >= u) - t q(u)],
    integrated from t = 0 while EM(t) > `t_max`. Level sets without a uniform point get q = 0.5 / n.
    """
    data = np.sort(np.asarray(normal_scores, dtype=np.float64))
    uniform = np.sort(np.asarray(uniform_scores, dtype=np.float64))
    if data.size == 0 or uniform.size == 0:
        raise ValueError("excess mass needs scores of data rows and of uniform points")
    levels = np.unique(data)
    if levels.size > max_levels:
        levels = np.unique(np.quantile(data, np.linspace(0.0, 1.0, max_levels)))
    mass = 1.0 - np.searchsorted(data, levels, side="left") / data.size
    volume = np.maximum(1.0 - np.searchsorted(uniform, levels, side="left") / uniform.size, 0.5 / uniform.size)
    t_end = float(((mass - t_max) / volume).max())
    if t_end <= 0:
        return 0.0
    t = np.linspace(0.0, t_end, n_grid)
    curve = np.maximum((mass[None, :] - t[:, None] * volume[None, :]).max(axis=1), 0.0)
    return float(np.trapezoid(curve, t))


def uniform_rows(rows: pd.DataFrame, columns: list[str], n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` points drawn uniformly in the bounding box of `columns` of `rows`.

    Columns that are never negative (counts) are boxed on the log1p scale and mapped back, so the box
    is not mostly empty space beyond a heavy tail; the measure does not depend on `model.log_transform`.
    """
    values = rows[columns].astype(np.float64)
    counts = (values.min() >= 0).to_numpy()
    scaled = np.where(counts, np.log1p(values.clip(lower=0)), values)
    draws = rng.uniform(scaled.min(axis=0), scaled.max(axis=0), size=(n, len(columns)))
    return pd.DataFrame(np.where(counts, np.expm1(draws), draws), columns=columns)


def em_subsets(columns: list[str], rows: pd.DataFrame, rng: np.random.Generator,
               n_subsets: int = EM_SUBSETS, size: int = EM_SUBSET_SIZE) -> list[list[str]]:
    """Random feature subsets for Excess-Mass in high dimension (Goix 2016: sub-sample features, average)."""
    values = rows[columns].astype(np.float64)
    varying = [c for c, lo, hi in zip(columns, values.min(), values.max()) if hi > lo]
    if len(varying) <= size:
        return [varying]
    return [sorted(rng.choice(varying, size=size, replace=False).tolist()) for _ in range(n_subsets)]


def detector_excess_mass(cfg: Config, train_rows: pd.DataFrame, rows: pd.DataFrame, columns: list[str],
                         n_uniform: int = EM_UNIFORM_SAMPLES) -> float:
    """Mean EM area over feature subsets: the trial's model refitted on each subset, scored on `rows`.

    The subsets and uniform points depend only on `cfg.seed` and the data, so trials are compared on the
    same measure.
    """
    from github_ueba.model import ActorDayDetector

    rng = np.random.default_rng(cfg.seed)
    areas = []
    for subset in em_subsets(columns, rows, rng):  # a handful of feature subsets, not rows
        detector = ActorDayDetector.from_config(cfg.model, subset).fit(train_rows)
        uniform = uniform_rows(rows, subset, n_uniform, rng)
        areas.append(excess_mass_area(detector.decision_function(rows), detector.decision_function(uniform)))
    return float(np.mean(areas))


# --------------------------------------------------------------------------------- evaluation


@dataclass
class Evaluator:
    """Trains a trial's config on the days before the validation window and scores the window."""

    base_cfg: Config
    window: Window
    labels: pd.DataFrame | None
    objective: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @functools.cached_property
    def base_features(self) -> pd.DataFrame:
        """The ingest stage's base features, read once for all the features settings a study tries."""
        path = stages.require(stages.stage_dir(self.base_cfg, "ingest") / "base_features.parquet", "ingest")
        return pd.read_parquet(path)

    def features_for(self, cfg: Config) -> pd.DataFrame:
        """The features table for `cfg.features`: the stage's output, or recomputed once per setting."""
        key = json.dumps(to_dict(cfg)["features"], sort_keys=True)
        if key not in self.tables:
            if key == json.dumps(to_dict(self.base_cfg)["features"], sort_keys=True):
                self.tables[key] = stages.load_features(self.base_cfg)
            else:
                base = to_dict(self.base_cfg)["features"]
                changed = {k: v for k, v in to_dict(cfg)["features"].items() if v != base[k]}
                log.info("tune: recomputing behaviour features for %s", changed)
                self.tables[key] = stages.build_features(self.base_features, cfg.features)
        return self.tables[key]

    def evaluate(self, cfg: Config) -> dict[str, Any]:
        """Metrics of `cfg` on the validation window (plus the EM area when the objective needs it)."""
        from github_ueba.evaluate import detection_metrics

        table = self.features_for(cfg)
        detector, train_rows = stages.fit_detector(cfg, table, self.window.validation_start)
        rows = table.loc[_in_window(table, self.window)].reset_index(drop=True)
        if rows.empty:
            raise InputError(
                f"no actor-days in the validation window {self.window.validation_start}..{self.window.detect_start}"
            )
        scored = stages.score_rows(cfg, detector, rows)
        n_days = max(int(rows["day"].nunique()), 1)
        metrics: dict[str, Any] = {
            "train_rows": int(len(train_rows)),
            "validation_rows": int(len(rows)),
            "n_flagged": int(scored["is_anomaly"].sum()),
            "flagged_per_day": float(scored["is_anomaly"].sum()) / n_days,
        }
        if self.labels is not None:
            labels = self.labels.loc[_in_window(self.labels, self.window)]
            found = detection_metrics(scored[["actor", "day", "anomaly_score", "is_anomaly"]], labels)
            metrics.update({k: v for k, v in found.items() if k != "notes"})
            metrics["flag_f1"] = found["flagged_f1"]
        if self.objective == "excess_mass":
            columns = list(detector.feature_names_in_)
            metrics["excess_mass"] = detector_excess_mass(cfg, train_rows, rows, columns)
        return metrics

    def values(self, metrics: dict[str, Any]) -> list[float]:
        """The objective value(s) Optuna gets; a missing or NaN value fails the trial."""
        values = [metrics.get(name) for name in VALUE_NAMES[self.objective]]
        bad = [n for n, v in zip(VALUE_NAMES[self.objective], values) if v is None or not math.isfinite(float(v))]
        if bad:
            raise ValueError(f"objective value {bad} is missing or not finite on the validation window")
        return [float(v) for v in values]


# ------------------------------------------------------------------------------------ results


@dataclass
class TuneResult:
    """What a study produced: every trial, the best one(s), and where the tuned model config went."""

    study_name: str
    objective: str
    trials: pd.DataFrame
    best: list[dict[str, Any]]  # the best trial, or the Pareto front (number, values, params)
    chosen: dict[str, Any]  # the trial written to tuned.yaml
    tuned_path: Path
    extra_overrides: list[str]  # non-model keys of the chosen trial (e.g. features.baseline_days)
    parent_run_id: str | None = None

    def command(self) -> str:
        """The commands that use the tuned config."""
        extra = " ".join(self.extra_overrides)
        dvc_extra = "".join(f" -S {o}" for o in self.extra_overrides)
        return f"dvc exp run -S model=tuned{dvc_extra}   or   github-ueba train model=tuned {extra}".rstrip()

    def summary(self) -> str:
        """A printable table of the trials, the best, and how to apply it."""
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            table = self.trials.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        front = ", ".join(str(t["number"]) for t in self.best)
        lines = [
            f"study {self.study_name!r}, objective {self.objective}: {len(self.trials)} trials",
            table,
            ("Pareto front: trials " if self.objective == "pareto" else "best trial: ") + front,
            f"wrote {self.tuned_path} from trial {self.chosen['number']} "
            f"({', '.join(f'{k}={v:.4g}' for k, v in self.chosen['values'].items())})",
            f"use it: {self.command()}",
        ]
        return "\n".join(lines)


def trials_table(study: optuna.Study, value_names: list[str]) -> pd.DataFrame:
    """One row per trial: number, state, objective value(s), params, and the failure reason."""
    rows = []
    for t in study.trials:
        values = t.values or [None] * len(value_names)
        rows.append(
            {"trial": t.number, "state": t.state.name, **dict(zip(value_names, values)), **t.params,
             "fail_reason": t.user_attrs.get("fail_reason", "")}
        )
    return pd.DataFrame(rows)


def _trial_summary(trial: optuna.trial.FrozenTrial, value_names: list[str]) -> dict[str, Any]:
    return {"number": trial.number, "values": dict(zip(value_names, trial.values)), "params": dict(trial.params)}


def write_tuned_model(model: dict[str, Any], path: Path, header: list[str]) -> None:
    """Write a complete model config (as conf/model/*.yaml) atomically, with a comment header."""
    from omegaconf import OmegaConf

    body = OmegaConf.to_yaml(OmegaConf.create(model))
    text = "".join(f"# {line}\n" for line in header) + body
    with io.atomic_path(path) as tmp:
        tmp.write_text(text)


def tuned_model_config(cfg: Config) -> dict[str, Any]:
    """The chosen trial's composed `model` section, named `tuned`, random_state tied to `${seed}`."""
    model = to_dict(cfg)["model"]
    model["name"] = "tuned"
    model["random_state"] = "${seed}"
    return model


# ------------------------------------------------------------------------------------ tracking


@contextlib.contextmanager
def _mlflow_run(enabled: bool, **kwargs: Any) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    import mlflow

    with mlflow.start_run(**kwargs) as run:
        yield run


def _log_plots(study: optuna.Study, value_names: list[str]) -> None:
    """Optuna's history, importance (and Pareto front) plots as artifacts of the active run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    from optuna.visualization import matplotlib as optuna_plots

    multi = len(value_names) > 1
    target = (lambda t: t.values[0]) if multi else None
    plots = {
        "optimization_history": lambda: optuna_plots.plot_optimization_history(
            study, target=target, target_name=value_names[0]),
        "param_importances": lambda: optuna_plots.plot_param_importances(
            study, target=target, target_name=value_names[0]),
    }
    if multi:
        plots["pareto_front"] = lambda: optuna_plots.plot_pareto_front(study, target_names=value_names)
    with tempfile.TemporaryDirectory() as folder:
        for name, draw in plots.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    axes = draw()
                figure = getattr(axes, "figure", None) or np.ravel(axes)[0].figure
                path = Path(folder) / f"{name}.png"
                figure.savefig(path, dpi=100, bbox_inches="tight")
                mlflow.log_artifact(str(path), artifact_path="plots")
            except Exception as err:  # plots are best effort: Optuna refuses some (e.g. importance of <2 trials)
                reason = f"{type(err).__name__}: {err}"[:500]
                log.info("tune: skipped plot %s: %s", name, reason)
                mlflow.set_tag(f"plot_skipped.{name}", reason)
            finally:
                plt.close("all")


# --------------------------------------------------------------------------------------- study


def _sampler(objective: str, seed: int) -> optuna.samplers.BaseSampler:
    if objective == "pareto":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _open_study(cfg: Config, objective: str) -> optuna.Study:
    """Create or resume the study; refuse to resume one made for another objective."""
    tune = cfg.tune
    storage = optuna.storages.RDBStorage(tune.storage) if tune.storage.startswith("sqlite") else tune.storage
    try:
        existing = optuna.load_study(study_name=tune.study_name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None and existing.user_attrs.get("objective", objective) != objective:
        raise ConfigError(
            f"tune.study_name={tune.study_name!r} in {tune.storage} was run with objective "
            f"{existing.user_attrs.get('objective')}, not {objective}; choose another tune.study_name"
        )
    done = len(existing.trials) if existing is not None else 0
    # Offset the seed by the trials already run: a resumed study does not repeat its first suggestions,
    # and the same history still gives the same suggestions.
    study = optuna.create_study(
        storage=storage,
        study_name=tune.study_name,
        sampler=_sampler(objective, tune.sampler_seed + done),
        directions=DIRECTIONS[objective],
        load_if_exists=True,
    )
    study.set_user_attr("objective", objective)
    return study


def _check_storage(cfg: Config) -> None:
    if not cfg.tracking.enabled:
        return
    from github_ueba.tracking import tracking_uri

    if tracking_uri(cfg).rstrip("/") == cfg.tune.storage.rstrip("/"):
        raise ConfigError(
            f"tune.storage={cfg.tune.storage} is MLflow's store too; give Optuna its own sqlite file "
            "(both keep an alembic_version table)"
        )


def run_study(
    overrides: list[str] | None = None,
    params: str | None = None,
    *,
    tuned_path: str | Path | None = None,
) -> TuneResult:
    """Run (or resume) the Optuna study of `tune.*`, log every trial to MLflow, write the tuned model config.

    `overrides` are Hydra overrides (or dotlist keys with `params`) applied to every trial; `tuned_path`
    defaults to `<conf>/model/tuned.yaml`.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base_overrides = list(overrides or [])
    base_cfg = load(base_overrides, params=params)
    window = stages.read_window(base_cfg)
    if window.validation_start >= window.detect_start:
        raise ConfigError("window.validation_days=0: tune needs a validation window before the detect window")
    _check_storage(base_cfg)
    labels = load_labels(base_cfg)
    objective = resolve_objective(base_cfg.tune.objective, labels, window)
    specs = active_specs(parse_search_space(base_cfg.tune.search_space), objective, base_cfg.model.threshold.policy)
    specs = unpinned_specs(specs, base_overrides)
    if not specs:
        raise ConfigError(f"tune.search_space: no key left to search for objective {objective}")
    _check_keys_exist(base_cfg, specs)
    evaluator = Evaluator(base_cfg, window, labels, objective)
    study = _open_study(base_cfg, objective)
    value_names = VALUE_NAMES[objective]
    tracking = base_cfg.tracking.enabled

    def trial_overrides(values: dict[str, Any]) -> list[str]:
        return base_overrides + [f"{k}={hydra_value(v)}" for k, v in values.items()]

    def objective_fn(trial: optuna.Trial) -> list[float]:
        values = {spec.name: spec.suggest(trial) for spec in specs}
        tags = {"optuna.study": study.study_name, "optuna.trial_number": str(trial.number)}
        with _mlflow_run(tracking, run_name=f"trial-{trial.number}", nested=True, tags=tags):
            if tracking:
                import mlflow

                mlflow.log_params({k: hydra_value(v) for k, v in values.items()})
            try:
                cfg = load(trial_overrides(values), params=params)
                metrics = evaluator.evaluate(cfg)
                result = evaluator.values(metrics)
            except TRIAL_ERRORS as err:
                reason = f"{type(err).__name__}: {err}"
                trial.set_user_attr("fail_reason", reason[:1000])
                log.warning("tune: trial %d failed: %s", trial.number, reason)
                if tracking:
                    mlflow.set_tags({"optuna.state": "FAILED", "fail_reason": reason[:5000]})
                raise
            if tracking:
                from github_ueba.tracking import flat_metrics

                mlflow.log_metrics(flat_metrics(metrics))
                mlflow.set_tag("optuna.state", "COMPLETE")
        log.info("tune: trial %d %s -> %s", trial.number, values, dict(zip(value_names, result)))
        return result

    if tracking:
        from github_ueba.tracking import connect

        connect(base_cfg)
    parent_tags = {"optuna.study": study.study_name, "optuna.objective": objective, "stage": "tune"}
    with _mlflow_run(tracking, run_name=f"tune-{study.study_name}", tags=parent_tags) as parent:
        if tracking:
            import mlflow

            mlflow.log_params({
                "tune.objective": objective, "tune.n_trials": base_cfg.tune.n_trials,
                "tune.sampler_seed": base_cfg.tune.sampler_seed, "tune.storage": base_cfg.tune.storage,
                "tune.search_space": json.dumps([s.__dict__ for s in specs], default=str)[:6000],
                "window.validation_start": window.validation_start.isoformat(),
                "window.detect_start": window.detect_start.isoformat(),
            })
        study.optimize(objective_fn, n_trials=base_cfg.tune.n_trials, timeout=base_cfg.tune.timeout,
                       catch=TRIAL_ERRORS, show_progress_bar=sys.stderr.isatty())
        result = _finish(study, objective, value_names, trial_overrides, params, tuned_path)
        if tracking:
            _log_parent(study, result, value_names)
            result.parent_run_id = parent.info.run_id
    return result


def _check_keys_exist(cfg: Config, specs: list[ParamSpec]) -> None:
    from omegaconf import OmegaConf

    tree = OmegaConf.create(to_dict(cfg))
    missing = [s.name for s in specs if OmegaConf.select(tree, s.name, default="<missing>") == "<missing>"]
    if missing:
        raise ConfigError(f"tune.search_space: {missing} are not config keys")


def _finish(study: optuna.Study, objective: str, value_names: list[str],
            trial_overrides: Callable[[dict[str, Any]], list[str]], params: str | None,
            tuned_path: str | Path | None) -> TuneResult:
    """Pick the best trial(s), write tuned.yaml, and build the result."""
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        reasons = sorted({t.user_attrs.get("fail_reason", t.state.name) for t in study.trials})
        raise UebaError(f"tune: no trial of study {study.study_name!r} completed; reasons: {reasons[:5]}")
    best = study.best_trials if objective == "pareto" else [study.best_trial]
    chosen = max(best, key=lambda t: (t.values[0], -t.number))
    cfg = load(trial_overrides(chosen.params), params=params)
    extra = [f"{k}={hydra_value(v)}" for k, v in chosen.params.items() if not k.startswith("model.")]
    path = Path(tuned_path) if tuned_path else conf_dir() / "model" / "tuned.yaml"
    values = ", ".join(f"{k}={v:.4g}" for k, v in zip(value_names, chosen.values))
    header = [
        f"Written by `github-ueba tune`: study {study.study_name!r}, objective {objective}, "
        f"trial {chosen.number} ({values}).",
        "Use it: github-ueba train model=tuned   or   dvc exp run -S model=tuned",
    ]
    if extra:
        header.append(f"The study also chose {' '.join(extra)} (not a model key): add it as an override, e.g.")
        header.append("  dvc exp run -S model=tuned" + "".join(f" -S {o}" for o in extra))
    write_tuned_model(tuned_model_config(cfg), path, header)
    return TuneResult(
        study_name=study.study_name,
        objective=objective,
        trials=trials_table(study, value_names),
        best=[_trial_summary(t, value_names) for t in best],
        chosen=_trial_summary(chosen, value_names),
        tuned_path=path,
        extra_overrides=extra,
    )


def _log_parent(study: optuna.Study, result: TuneResult, value_names: list[str]) -> None:
    import mlflow

    mlflow.log_params({f"best.{k}": hydra_value(v) for k, v in result.chosen["params"].items()})
    mlflow.log_metrics({f"best_{k}": float(v) for k, v in result.chosen["values"].items()})
    mlflow.log_metric("n_trials_total", len(study.trials))
    mlflow.set_tag("best_trial", str(result.chosen["number"]))
    if len(result.best) > 1 or result.objective == "pareto":
        mlflow.set_tag("pareto_front", ",".join(str(t["number"]) for t in result.best))
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "trials.csv"
        result.trials.to_csv(table, index=False)
        mlflow.log_artifact(str(table))
        mlflow.log_artifact(str(result.tuned_path))
    _log_plots(study, value_names)
