"""The HTML report: rendered from a real tiny pipeline run, self-contained, escaped, small; and the
detect summary's line width."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from github_ueba import report, summary

from conftest import REPO

EVIL = '<script>alert("pwned")</script>&<img src=x onerror=alert(1)>'
RESOURCE_LINK = re.compile(r"""(?:\b(?:src|href|xlink:href)\s*=\s*["']?\s*(?:https?:)?//)|url\(\s*["']?\s*(?:https?:)?//""",
                           re.IGNORECASE)


@pytest.fixture(scope="module")
def run(tiny_run):
    """The session's tiny pipeline run, its report rendered again from the CSVs: (config, detect dir, path)."""
    cfg, data = tiny_run
    detect_dir = data / "detect"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        path = report.write_report(cfg, detect_dir)
    finally:
        os.chdir(cwd)
    return cfg, detect_dir, path


class _AnomalyRows(HTMLParser):
    """Collects the text of each cell of table#anomalies, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_table = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and ("id", "anomalies") in attrs:
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _anomaly_rows(document: str) -> list[list[str]]:
    parser = _AnomalyRows()
    parser.feed(document)
    return [r for r in parser.rows if r]


def test_report_lists_the_ranked_anomalies(run):
    _, detect_dir, path = run
    document = path.read_text(encoding="utf-8")
    anomalies = pd.read_csv(detect_dir / "anomalies.csv", dtype={"actor": str}, keep_default_na=False)
    assert len(anomalies) > 0
    rows = _anomaly_rows(document)
    shown = anomalies.head(report.TOP_TABLE)
    assert len(rows) == len(shown)
    assert [r[1] for r in rows] == shown["actor"].tolist()
    assert [r[2] for r in rows] == shown["day"].tolist()
    for actor in shown["actor"]:
        assert html.escape(actor) in document
    assert "reasons" in document and shown["reasons"].iloc[0][:20] in html.unescape(document)


def test_report_is_self_contained_and_small(run):
    _, detect_dir, path = run
    document = path.read_text(encoding="utf-8")
    assert "<script" not in document.lower()
    assert "<link" not in document.lower() and "@import" not in document
    assert not RESOURCE_LINK.search(document)
    assert document.count("<svg") >= 3
    assert path.stat().st_size < 2_000_000
    assert not [p for p in detect_dir.iterdir() if p.name.endswith(".tmp")]


def test_report_summarises_the_run(run):
    cfg, _, path = run
    document = path.read_text(encoding="utf-8")
    for text in ("detect_start", "events_in_window", "n_estimators", cfg.model.threshold.policy,
                 "score distribution", "anomalies per day", "Key features of the top"):
        assert text in document, text
    n_timelines = len(re.findall(r"<h3>#\d+ ", document))
    assert n_timelines == min(report.TOP_TIMELINES, len(_anomaly_rows(document)))


def test_report_shows_labels_when_the_source_has_them(run):
    _, detect_dir, path = run
    document = path.read_text(encoding="utf-8")
    assert 'id="per-scenario-recall"' in document
    labels = pd.read_csv(detect_dir.parent / "ingest" / "labels.csv")
    attacks = {s for s in labels["scenario"] if not s.startswith("benign")}
    assert attacks and all(f"<td>{html.escape(s)}</td>" in document for s in attacks)
    assert "average precision" in document
    assert "precision" in document and "recall" in document


def _synthetic(actor: str) -> report.ReportData:
    """A small scored table with one hostile actor name, flagged on the last day."""
    days = pd.date_range("2026-03-01", periods=30, freq="D")
    actors = ["alice", "bob", actor]
    history = pd.MultiIndex.from_product([actors, days], names=["actor", "day"]).to_frame(index=False)
    rng = np.random.default_rng(0)
    for feature in ("git_clone", "repo_download", "new_repos", "first_seen_ips"):
        history[feature] = rng.poisson(2, len(history))
        history[f"{feature}_z"] = rng.random(len(history))
    scores = history.loc[history["day"] >= days[-5], ["actor", "day"]].assign(
        anomaly_score=rng.normal(-0.4, 0.05, 15), is_anomaly=False
    )
    last = (scores["actor"] == actor) & (scores["day"] == days[-1])
    scores.loc[last, ["anomaly_score", "is_anomaly"]] = [0.2, True]
    anomalies = pd.DataFrame({"rank": [1], "actor": [actor], "day": [days[-1].strftime("%Y-%m-%d")],
                              "anomaly_score": [0.2], "reasons": [f"git_clone 40 vs usual 2 <b>{actor}</b>"],
                              "is_bot": [False]})
    return report.ReportData(anomalies=anomalies, scores=scores, history=history, baseline_days=20,
                             summary={"window": {"source": actor}},
                             metrics={"note": actor, f"recall_top1pct/{actor}": 0.5})


def test_hostile_actor_names_are_escaped():
    document = report.render_report(_synthetic(EVIL))
    assert "<script" not in document.lower()
    assert "<img" not in document.lower() and "<b>" not in document
    assert html.escape(EVIL) in document
    assert 'id="per-scenario-recall"' in document
    assert len(_anomaly_rows(document)) == 1 and _anomaly_rows(document)[0][1] == EVIL


def test_key_features_are_the_largest_z_of_the_day():
    data = _synthetic("carol")
    day = pd.Timestamp(data.anomalies["day"].iloc[0])
    row = data.history.loc[(data.history["actor"] == "carol") & (data.history["day"] == day)].iloc[0]
    z = {f: row[f"{f}_z"] for f in ("git_clone", "repo_download", "new_repos", "first_seen_ips")}
    expected = sorted(z, key=z.get, reverse=True)[:3]
    assert report.key_features(data.history, data.anomalies).iloc[0].tolist() == expected


def test_summary_lines_fit_100_characters():
    long_actor = "a-very-long-enterprise-managed-user_" + "x" * 60
    long_reasons = "; ".join(f"feature_{i}_with_a_long_name 1234 vs usual 1.5±0.7 (first time)" for i in range(8))
    anomalies = pd.DataFrame({"rank": [1, 2], "actor": [long_actor, "bob"], "day": ["2026-11-30"] * 2,
                              "anomaly_score": [0.1234, 0.05], "reasons": [long_reasons, "unbroken" * 40]})
    text = summary.format_anomalies(anomalies)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "feature_7_with_a_long_name" in text


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def test_report_opens_in_headless_chromium(run, tmp_path):
    if CHROMIUM is None:
        pytest.skip("Debian chromium not installed: apt-get install chromium")
    _, detect_dir, path = run
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path}",
         "--dump-dom", path.resolve().as_uri()],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert 'id="anomalies"' in dom
    first_actor = pd.read_csv(detect_dir / "anomalies.csv", dtype={"actor": str}, keep_default_na=False)["actor"][0]
    assert html.escape(first_actor) in dom


def test_report_from_the_scored_table_matches_the_csvs(run, tmp_path):
    cfg, detect_dir, _ = run
    import joblib

    from github_ueba import stages

    window = stages.read_window(cfg)
    table = stages.load_features(cfg)
    rows = table.loc[table["day"] >= pd.Timestamp(window.detect_start)].reset_index(drop=True)
    scored = stages.score_rows(cfg, joblib.load(stages.model_path(cfg)), rows)
    path = report.write_report(cfg, tmp_path, scored=scored, metrics={"n_scored": len(scored)})
    assert path == tmp_path / "report.html"
    from_scored = _anomaly_rows(path.read_text(encoding="utf-8"))
    from_csvs = _anomaly_rows((detect_dir / "report.html").read_text(encoding="utf-8"))
    assert [r[:3] for r in from_scored] == [r[:3] for r in from_csvs]
