"""End to end on a tiny simulated enterprise: the CLI in-process, then real `dvc repro` in a temp git repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from github_ueba.cli import main

from conftest import TINY

BIN = Path(sys.executable).parent


def test_cli_run_writes_every_stage_output(tiny_run, monkeypatch, repo_root, capsys):
    """`github-ueba run` (the session's tiny_run) writes every stage's outputs."""
    monkeypatch.chdir(repo_root)
    _, data = tiny_run
    overrides = TINY + [f"paths.data={data}", f"paths.models={data}/models", "tracking.enabled=false"]
    quality = json.loads((data / "ingest" / "quality.json").read_text())
    assert quality["rejected"] == 0 and quality["actor_days"] > 0 and quality["bots"] >= 2
    base = pd.read_parquet(data / "ingest" / "base_features.parquet")
    assert not base.duplicated(["actor", "day"]).any()
    scores = pd.read_csv(data / "detect" / "scores.csv")
    assert list(scores.columns) == ["actor", "day", "anomaly_score", "is_anomaly"]
    assert scores["day"].min() >= json.loads((data / "ingest" / "window.json").read_text())["detect_start"]
    anomalies = pd.read_csv(data / "detect" / "anomalies.csv")
    assert len(anomalies) == scores["is_anomaly"].sum() > 0
    assert anomalies["reasons"].str.len().min() > 0
    assert anomalies["anomaly_score"].is_monotonic_decreasing
    metrics = json.loads((data / "detect" / "metrics.json").read_text())
    assert 0 <= metrics["average_precision"] <= 1
    assert main(["show", "--top", "5", *overrides]) == 0
    shown = capsys.readouterr().out
    assert max(len(line) for line in shown.splitlines()) <= 100


def test_missing_upstream_output_is_a_clear_error(tmp_path, monkeypatch, repo_root, capsys):
    monkeypatch.chdir(repo_root)
    assert main(["train", f"paths.data={tmp_path}", "tracking.enabled=false"]) == 2
    err = capsys.readouterr().err
    assert "window.json" in err and "ingest" in err


def _tracked_copy(repo_root: Path, dest: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=repo_root, capture_output=True, text=True, check=True).stdout
    for rel in files.splitlines():
        src = repo_root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_dvc_repro_runs_the_pipeline_and_is_then_a_no_op(tmp_path, repo_root):
    """Real `dvc repro` in a temporary git repo holding the tracked files, with tiny params."""
    from dvc.utils.hydra import compose_and_dump

    work = tmp_path / "repo"
    work.mkdir()
    _tracked_copy(repo_root, work)
    compose_and_dump(str(work / "params.yaml"), str(work / "conf"), None, "config", str(work), TINY)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "init"]):
        _run(cmd, work, env)
    first = _run([str(BIN / "dvc"), "repro"], work, env)
    for stage in ("ingest", "features", "train", "detect"):
        assert f"Running stage '{stage}'" in first.stdout
    assert (work / "data" / "detect" / "anomalies.csv").exists()
    assert (work / "dvc.lock").exists()
    second = _run([str(BIN / "dvc"), "repro"], work, env)
    assert "Running stage" not in second.stdout
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["model"]["n_estimators"] = 60
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = _run([str(BIN / "dvc"), "repro"], work, env)
    assert "Running stage 'train'" in third.stdout and "Running stage 'detect'" in third.stdout
    assert "Running stage 'ingest'" not in third.stdout and "Running stage 'features'" not in third.stdout
    metrics = _run([str(BIN / "dvc"), "metrics", "show", "--json"], work, env)
    assert "average_precision" in metrics.stdout
