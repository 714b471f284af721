"""The analyst's HTML report of a detect run: one self-contained file (inline CSS and SVG, no
scripts, no external resources) that opens offline. Every text from the data is HTML-escaped:
actor names and reasons come from audit logs and are untrusted.
"""

from __future__ import annotations

import datetime as dt
import html
import io as stdio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from github_ueba import io
from github_ueba.config import Config

#: Ranked anomalies listed in the table, and those that get a timeline of their key features.
TOP_TABLE = 50
TOP_TIMELINES = 10
FEATURES_PER_TIMELINE = 3

#: Only locally embedded content may load: the CSP makes "opens offline" a property the browser enforces.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1180px;
color:#1d2330;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
h3{font-size:14px;margin:18px 0 4px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d8dce3;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv td:first-child{color:#555}.bot{color:#888}.note{color:#666;font-size:12px}
.reasons{min-width:320px;max-width:620px}.day{white-space:nowrap}figure{margin:6px 0}svg{max-width:100%;height:auto}
.grid{display:flex;flex-wrap:wrap;gap:24px}.scroll{overflow-x:auto}
"""


@dataclass
class ReportData:
    """Everything the report shows, already read from the run's outputs."""

    anomalies: pd.DataFrame  # rank, actor, day (YYYY-MM-DD), anomaly_score, reasons, is_bot, key columns
    scores: pd.DataFrame  # actor, day, anomaly_score, is_anomaly: every scored actor-day
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)  # section -> key -> value
    metrics: dict[str, Any] = field(default_factory=dict)
    history: pd.DataFrame | None = None  # features table (actor, day, f, f_z ...) for the timelines
    baseline_days: int = 60
    threshold_score: float | None = None  # anomaly_score above which actor-days are flagged (fixed policy)
    threshold_label: str = "threshold"
    labels: pd.DataFrame | None = None  # actor, day, scenario (simulator only)
    title: str = "github-ueba detect report"


# ------------------------------------------------------------------------------------- escaping


def _text(value: Any) -> str:
    """Any value as escaped HTML text (floats shortened, missing as empty)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return html.escape(f"{float(value):.4g}")
    if isinstance(value, (list, tuple)):
        return html.escape(", ".join(str(v) for v in value)) if value else "none"
    return html.escape(str(value))


def _table(frame: pd.DataFrame, table_id: str | None = None, numeric: Sequence[str] = (),
           classes: dict[str, str] | None = None) -> str:
    """A DataFrame as an HTML table, every header and cell escaped; `classes` styles named columns."""
    head = "".join(f"<th>{_text(c)}</th>" for c in frame.columns)
    styles = {**{c: "num" for c in numeric}, **(classes or {})}
    opening = [f'<td class="{styles[c]}">' if c in styles else "<td>" for c in frame.columns]
    body = "".join(
        "<tr>" + "".join(f"{td}{_text(v)}</td>" for td, v in zip(opening, row)) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _key_values(values: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_text(k)}</td><td>{_text(v)}</td></tr>" for k, v in values.items())
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


# ------------------------------------------------------------------------------------- figures

_SVG_START = re.compile(r"<svg\b")
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _svg(fig: Any) -> str:
    """A matplotlib figure as an inline <svg> element (no XML prolog, DOCTYPE or RDF metadata)."""
    buffer = stdio.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    match = _SVG_START.search(text)
    text = text[match.start():] if match else text
    return _METADATA.sub("", text)


def _figure(width: float, height: float, margins: dict[str, float] | None = None) -> Any:
    """A bare Figure (no pyplot state) with fixed margins: layout engines cost seconds per report."""
    import matplotlib

    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller and selectable
    matplotlib.rcParams["svg.hashsalt"] = "github-ueba"  # deterministic element ids
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=72)
    fig.subplots_adjust(**({"left": 0.12, "right": 0.97, "bottom": 0.18, "top": 0.9} | (margins or {})))
    return fig


def score_distribution_svg(scores: pd.Series, flagged: pd.Series, threshold: float | None,
                           threshold_label: str = "threshold") -> str:
    """Histogram of anomaly scores (flagged actor-days stacked on top), the threshold as a line."""
    fig = _figure(6.0, 2.8, {"left": 0.14, "bottom": 0.17})
    ax = fig.add_subplot()
    values = scores.to_numpy(dtype=float)
    edges = np.histogram_bin_edges(values, bins=40)
    mask = flagged.to_numpy(dtype=bool)
    ax.hist([values[~mask], values[mask]], bins=edges, stacked=True, color=["#8da0cb", "#e4572e"],
            label=["not flagged", "flagged"])
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(_no_labels())
    if threshold is not None:
        ax.axvline(threshold, color="#222", linestyle="--", linewidth=1, label=f"{threshold_label} {threshold:.3f}")
    ax.set_xlabel("anomaly score (higher = more anomalous)")
    ax.set_ylabel("actor-days")
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig)


def anomalies_per_day_svg(scores: pd.DataFrame) -> str:
    """Bar chart: flagged actor-days per day of the detect window."""
    per_day = scores.groupby(pd.to_datetime(scores["day"]))["is_anomaly"].sum().sort_index()
    fig = _figure(6.0, 2.8, {"left": 0.14, "bottom": 0.26})
    ax = fig.add_subplot()
    ax.bar(per_day.index, per_day.to_numpy(), color="#e4572e", width=0.8)
    ax.set_ylabel("flagged actor-days")
    ax.yaxis.set_major_locator(_integer_ticks())
    ax.xaxis.set_major_formatter(_date_format())
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    return _svg(fig)


def precision_recall_svg(positive: np.ndarray, scores: np.ndarray) -> str:
    """Precision-recall curve of the scores against the labelled attack actor-days."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(positive, scores)
    fig = _figure(4.5, 3.2, {"left": 0.15, "bottom": 0.15})
    ax = fig.add_subplot()
    ax.step(recall, precision, where="post", color="#1b6ca8")
    ax.axhline(positive.mean(), color="#999", linestyle=":", linewidth=1, label="random")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"average precision {average_precision_score(positive, scores):.3f}", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig)


def timeline_svg(series: pd.DataFrame, flagged_day: pd.Timestamp) -> str:
    """Small multiples: each column of `series` (indexed by day) over the baseline window, flagged day marked."""
    fig = _figure(2.9 * max(len(series.columns), 1), 1.9,
                  {"left": 0.05, "right": 0.99, "bottom": 0.15, "top": 0.86, "wspace": 0.22})
    axes = fig.subplots(1, max(len(series.columns), 1), squeeze=False)[0]
    for ax, name in zip(axes, series.columns):
        ax.plot(series.index, series[name].to_numpy(), color="#1b6ca8", linewidth=1, marker=".", markersize=3)
        ax.axvline(flagged_day, color="#e4572e", linewidth=1.2)
        ax.scatter([flagged_day], [series.loc[flagged_day, name]], color="#e4572e", zorder=3, s=16)
        ax.set_title(str(name), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(_few_dates())
        ax.xaxis.set_major_formatter(_date_format())
    return _svg(fig)


def _few_dates() -> Any:
    from matplotlib.dates import AutoDateLocator

    return AutoDateLocator(maxticks=4)


def _no_labels() -> Any:
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _date_format() -> Any:
    from matplotlib.dates import DateFormatter

    return DateFormatter("%m-%d")


# ------------------------------------------------------------------------------------- timelines


def _count_features(history: pd.DataFrame) -> list[str]:
    """Count features that have a z-score column in the features table."""
    return [c[:-2] for c in history.columns if c.endswith("_z") and c[:-2] in history.columns]


def key_features(history: pd.DataFrame, anomalies: pd.DataFrame, k: int = FEATURES_PER_TIMELINE) -> pd.DataFrame:
    """Per anomaly (actor, day): its `k` features with the largest z that day, as columns f1..fk."""
    features = _count_features(history)
    day = pd.to_datetime(anomalies["day"])
    rows = anomalies[["actor"]].assign(day=day).merge(
        history[["actor", "day", *[f"{f}_z" for f in features]]], on=["actor", "day"], how="left"
    )
    z = np.nan_to_num(rows[[f"{f}_z" for f in features]].to_numpy(dtype=float), nan=-np.inf)
    top = np.argsort(-z, axis=1, kind="stable")[:, :k]
    names = np.asarray(features, dtype=object)[top]
    return pd.DataFrame(names, columns=[f"f{i + 1}" for i in range(top.shape[1])], index=anomalies.index)


def _actor_series(history: pd.DataFrame, actor: str, day: pd.Timestamp, features: list[str], days: int) -> pd.DataFrame:
    """The actor's daily values of `features` over [day - days, day]; days without events are 0."""
    span = pd.date_range(day - pd.Timedelta(days=days), day, freq="D")
    own = history.loc[(history["actor"] == actor) & history["day"].between(span[0], span[-1]), ["day", *features]]
    return own.set_index("day").reindex(span, fill_value=0).astype(float)


def _timelines_html(data: ReportData) -> str:
    if data.history is None or data.anomalies.empty:
        return '<p class="note">No flagged actor-days, or no features table: no timelines.</p>'
    top = data.anomalies.head(TOP_TIMELINES)
    history = data.history.loc[data.history["actor"].isin(top["actor"])]
    keys = key_features(history, top)
    parts = []
    for (_, row), features in zip(top.iterrows(), keys.itertuples(index=False)):
        day = pd.Timestamp(row["day"])
        series = _actor_series(history, row["actor"], day, list(features), data.baseline_days)
        parts.append(
            f'<h3>#{_text(row["rank"])} {_text(row["actor"])} on {_text(row["day"])} '
            f'(score {_text(row["anomaly_score"])})</h3><figure>{timeline_svg(series, day)}</figure>'
        )
    return "".join(parts)


# ------------------------------------------------------------------------------------- labels


#: Per-scenario metric prefixes in metrics.json (`<prefix>/<scenario>`) and their column titles.
SCENARIO_METRICS = {"recall_top1pct": "recall in top 1%", "recall_flagged": "recall of flags"}


def attack_mask(scores: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """Per scored actor-day: is it a labelled attack (`benign*` look-alikes and unlabelled rows are not)."""
    from github_ueba.evaluate import BENIGN_PREFIX

    keyed = labels.assign(
        day=pd.to_datetime(labels["day"]).dt.strftime("%Y-%m-%d"),
        attack=~labels["scenario"].astype(str).str.startswith(BENIGN_PREFIX),
    ).groupby(["actor", "day"], as_index=False)["attack"].max()
    merged = scores[["actor", "day"]].assign(day=pd.to_datetime(scores["day"]).dt.strftime("%Y-%m-%d"))
    merged = merged.merge(keyed, on=["actor", "day"], how="left")
    return merged["attack"].fillna(False).to_numpy(dtype=bool)


def scenario_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Per-scenario recall from metrics.json (`recall_top1pct/<scenario>` keys), one row per scenario."""
    flat = pd.Series({k: v for k, v in metrics.items() if "/" in k and k.split("/", 1)[0] in SCENARIO_METRICS},
                     dtype=float)
    if flat.empty:
        return pd.DataFrame(columns=["scenario"])
    parts = flat.index.str.split("/", n=1)
    frame = pd.DataFrame({"metric": parts.str[0], "scenario": parts.str[1], "value": flat.to_numpy()})
    table = frame.pivot(index="scenario", columns="metric", values="value")
    table = table[[m for m in SCENARIO_METRICS if m in table.columns]].rename(columns=SCENARIO_METRICS)
    return table.reset_index().rename_axis(columns=None)


def _labels_html(data: ReportData) -> str:
    parts = []
    if data.labels is not None and len(data.labels) and len(data.scores):
        positive = attack_mask(data.scores, data.labels)
        if positive.any() and not positive.all():
            parts.append(f"<figure>{precision_recall_svg(positive, data.scores['anomaly_score'].to_numpy(float))}</figure>")
    per_scenario = scenario_table(data.metrics)
    if len(per_scenario):
        parts.append(_table(per_scenario, "per-scenario-recall", numeric=list(SCENARIO_METRICS.values())))
    if not parts:
        return ""
    return "<h2>Against the labels</h2>" + '<div class="grid">' + "".join(parts) + "</div>"


# ------------------------------------------------------------------------------------- document


def _anomaly_table(anomalies: pd.DataFrame) -> str:
    if anomalies.empty:
        return '<p id="anomalies">No actor-day was flagged.</p>'
    numeric = [c for c in anomalies.columns if c not in ("actor", "day", "reasons", "is_bot")]
    shown = anomalies.head(TOP_TABLE).copy()
    if "reasons" in shown:
        shown["reasons"] = shown["reasons"].fillna("")
    return _table(shown, "anomalies", numeric=numeric, classes={"reasons": "reasons", "day": "day"})


def _threshold(data: ReportData) -> tuple[float | None, str]:
    """The fixed threshold when there is one, else the lowest flagged score (budget / contamination)."""
    if data.threshold_score is not None:
        return data.threshold_score, data.threshold_label
    flagged = data.scores.loc[data.scores["is_anomaly"], "anomaly_score"]
    return (float(flagged.min()), "lowest flagged score") if len(flagged) else (None, "")


def render_report(data: ReportData) -> str:
    """The whole report as one HTML document (pure: no file access)."""
    scalar_metrics = {k: v for k, v in data.metrics.items() if not isinstance(v, (dict, list)) and "/" not in k}
    n_flagged = int(data.scores["is_anomaly"].sum()) if len(data.scores) else 0
    sections = [
        f"<h1>{_text(data.title)}</h1>",
        f'<p>{len(data.scores)} actor-days scored, {n_flagged} flagged. '
        f'Generated {_text(dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))}.</p>',
        "<h2>Run</h2>",
        '<div class="grid">'
        + "".join(f"<div><h3>{_text(name)}</h3>{_key_values(values)}</div>" for name, values in data.summary.items())
        + (f"<div><h3>metrics</h3>{_key_values(scalar_metrics)}</div>" if scalar_metrics else "")
        + "</div>",
        f"<h2>Ranked anomalies (top {min(TOP_TABLE, len(data.anomalies))} of {len(data.anomalies)})</h2>",
        f'<div class="scroll">{_anomaly_table(data.anomalies)}</div>',
        f"<h2>Key features of the top {min(TOP_TIMELINES, len(data.anomalies))} anomalies</h2>",
        f'<p class="note">The {FEATURES_PER_TIMELINE} features with the largest z-score that day, over the '
        f"{data.baseline_days}-day baseline window; the flagged day in red. Days without events count as 0.</p>",
        _timelines_html(data),
        "<h2>Scores</h2>",
        '<div class="grid">',
    ]
    if len(data.scores):
        sections.append(
            "<figure>"
            + score_distribution_svg(data.scores["anomaly_score"], data.scores["is_anomaly"], *_threshold(data))
            + "<figcaption class=\"note\">score distribution (log scale)</figcaption></figure>"
        )
        sections.append(
            f"<figure>{anomalies_per_day_svg(data.scores)}"
            '<figcaption class="note">anomalies per day</figcaption></figure>'
        )
    sections.append("</div>")
    sections.append(_labels_html(data))
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{_text(data.title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


# ------------------------------------------------------------------------------------- inputs


def _read_json(path: Path) -> dict[str, Any]:
    """An optional run output: {} when it is missing or unreadable (the report shows what exists)."""
    try:
        return io.read_json(path) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _flat(values: dict[str, Any], keys: Iterable[str] | None = None) -> dict[str, Any]:
    """Scalar entries of a dict (lists shown by their length when long)."""
    out: dict[str, Any] = {}
    for key in keys if keys is not None else values:
        if key not in values:
            continue
        value = values[key]
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in _flat(value).items()})
        elif isinstance(value, list) and len(value) > 5:
            out[key] = f"{len(value)} items"
        else:
            out[key] = value
    return out


def run_summary(cfg: Config, data_dir: Path) -> dict[str, dict[str, Any]]:
    """Sections of the run summary: window and source, data quality, model, threshold policy, MLflow."""
    quality = _read_json(data_dir / "ingest" / "quality.json")
    window = _read_json(data_dir / "ingest" / "window.json")
    model = cfg.model
    threshold = model.threshold
    sections: dict[str, dict[str, Any]] = {
        "window": {"source": cfg.source.name, **window},
        "data quality": _flat({k: v for k, v in quality.items() if k not in ("window", "source")}),
        "model": {
            "name": model.name,
            "feature_set": model.feature_set,
            "n_estimators": model.n_estimators,
            "max_samples": model.max_samples,
            "contamination": model.contamination,
            "max_features": model.max_features,
            "log_transform": model.log_transform,
            "random_state": model.random_state,
        },
        "threshold": {"policy": threshold.policy}
        | ({"cutoff (decision_function)": threshold.cutoff} if threshold.policy == "fixed" else {})
        | ({"budget_per_day": threshold.budget_per_day} if threshold.policy == "budget" else {}),
    }
    mlflow = _read_json(data_dir / "train" / "mlflow.json")
    if mlflow:
        sections["mlflow"] = _flat(mlflow)
    return sections


def _read_csv(path: Path) -> pd.DataFrame:
    """A detect CSV with actor names kept verbatim (an actor called "NA" or "null" stays a name)."""
    return pd.read_csv(path, dtype={"actor": str, "day": str, "reasons": str}, keep_default_na=False)


def _ranked(scored: pd.DataFrame) -> pd.DataFrame:
    """Flagged rows of a scored table, ranked like anomalies.csv."""
    from github_ueba.stages import KEY_COLUMNS

    flagged = scored.loc[scored["is_anomaly"].astype(bool)].sort_values("anomaly_score", ascending=False)
    flagged = flagged.assign(
        rank=np.arange(1, len(flagged) + 1), day=pd.to_datetime(flagged["day"]).dt.strftime("%Y-%m-%d")
    )
    keep = ["rank", "actor", "day", "anomaly_score", "reasons", "is_bot"] + [c for c in KEY_COLUMNS if c in flagged]
    return flagged[[c for c in keep if c in flagged]].reset_index(drop=True)


def report_data(cfg: Config, detect_dir: Path, scored: pd.DataFrame | None, metrics: dict | None,
                history: pd.DataFrame | None = None) -> ReportData:
    """Gather what the report shows from the run's outputs (or the `scored`, `metrics` and features
    `history` tables given, as `detect` does, so nothing is read twice)."""
    from github_ueba.stages import labelled, load_features, require

    data_dir = Path(cfg.paths.data)
    if scored is None:
        scores = _read_csv(require(detect_dir / "scores.csv", "detect"))
        anomalies = _read_csv(require(detect_dir / "anomalies.csv", "detect"))
    else:
        scores = scored[["actor", "day", "anomaly_score", "is_anomaly"]]
        anomalies = _ranked(scored)
    scores = scores.assign(is_anomaly=scores["is_anomaly"].astype(bool))
    if metrics is None:
        metrics = _read_json(detect_dir / "metrics.json")
    threshold = cfg.model.threshold
    return ReportData(
        anomalies=anomalies,
        scores=scores,
        summary=run_summary(cfg, data_dir),
        metrics=metrics,
        history=load_features(cfg) if history is None else history,
        baseline_days=cfg.features.baseline_days,
        threshold_score=-threshold.cutoff if threshold.policy == "fixed" else None,
        threshold_label=f"threshold (policy {threshold.policy})",
        labels=labelled(cfg),
    )


def write_report(cfg: Config, detect_dir: Path, scored: pd.DataFrame | None = None, metrics: dict | None = None,
                 history: pd.DataFrame | None = None) -> Path:
    """Write `<detect_dir>/report.html` (atomically) and return its path."""
    detect_dir = Path(detect_dir)
    document = render_report(report_data(cfg, detect_dir, scored, metrics, history))
    path = detect_dir / "report.html"
    with io.atomic_path(path) as tmp:
        tmp.write_text(document, encoding="utf-8")
    return path
