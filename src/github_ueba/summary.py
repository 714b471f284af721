"""The top-anomalies table and headline metrics printed after `detect` and by `make demo`."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pandas as pd

from github_ueba.config import Config

WIDTH = 100


def format_anomalies(anomalies: pd.DataFrame, top: int = 15, width: int = WIDTH) -> str:
    """Ranked anomalies as fixed-width text: one header line per actor-day, reasons wrapped below."""
    lines = [f"{'#':>3}  {'actor':<24} {'day':<10} {'score':>6}  reasons", "-" * width]
    indent = " " * 5
    for row in anomalies.head(top).itertuples(index=False):
        actor = str(row.actor)
        actor = actor if len(actor) <= 24 else actor[:23] + "…"
        head = f"{int(row.rank):>3}  {actor:<24} {row.day:<10} {row.anomaly_score:>6.3f}  "
        reasons = str(row.reasons) if isinstance(row.reasons, str) else ""
        wrapped = textwrap.wrap(reasons, width=width - len(head)) or [""]
        lines.append(head + wrapped[0])
        rest = " ".join(wrapped[1:])
        lines.extend(textwrap.wrap(rest, width=width, initial_indent=indent, subsequent_indent=indent))
    return "\n".join(lines)


def format_metrics(metrics: dict) -> str:
    """Headline detection metrics (those present), one per line."""
    keys = [
        ("n_scored", "actor-days scored"),
        ("n_flagged", "flagged"),
        ("average_precision", "average precision"),
        ("roc_auc", "ROC AUC"),
        ("recall_top1pct", "recall in top 1%"),
        ("precision_top1pct", "precision in top 1%"),
        ("benign_top1pct_count", "benign look-alikes in top 1%"),
        ("flagged_precision", "precision of flags"),
        ("flagged_recall", "recall of flags"),
    ]
    out = []
    for key, text in keys:
        if key in metrics and metrics[key] is not None:
            value = metrics[key]
            out.append(f"  {text:<32} {value:.3f}" if isinstance(value, float) else f"  {text:<32} {value}")
    scenarios = sorted({k.split("/", 1)[1] for k in metrics if k.startswith("recall_top1pct/")})
    if scenarios:
        out.append(f"  {'recall per scenario':<32} {'top 1%':>7} {'flagged':>8}")
        out.extend(
            f"    {name:<30} {metrics[f'recall_top1pct/{name}']:>7.2f} {metrics.get(f'recall_flagged/{name}', float('nan')):>8.2f}"
            for name in scenarios
        )
    return "\n".join(out)


def print_summary(cfg: Config, top: int = 15) -> None:
    """Print the top anomalies of the last `detect` and its metrics."""
    out = Path(cfg.paths.data) / "detect"
    anomalies = pd.read_csv(out / "anomalies.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"Top {min(top, len(anomalies))} of {len(anomalies)} flagged actor-days:")
    print(format_anomalies(anomalies, top=top))
    print()
    print("Detection metrics" + (" against the simulator's labels:" if "average_precision" in metrics else ":"))
    print(format_metrics(metrics))
    for name in ("anomalies.csv", "report.html"):
        path = out / name
        if path.exists():
            shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
            print(textwrap.shorten(f"{name}: {shown}", width=WIDTH, placeholder="…"))
