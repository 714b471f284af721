"""Shared fixtures: the repo root, and a tiny simulated-enterprise config for fast end-to-end runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

#: Hydra overrides for a small enterprise that runs the whole pipeline in seconds.
TINY = [
    "source.n_developers=40",
    "source.n_admins=3",
    "source.n_bots=2",
    "source.n_service_accounts=1",
    "source.n_teams=4",
    "source.repos_per_team=5",
    "source.hires=1",
    "source.leavers=1",
    "source.attacks_per_scenario=1",
    "source.benign_per_scenario=1",
    "source.attack_days=20",
    "window.lookback_days=90",
    "window.detect_days=20",
    "window.validation_days=10",
    "model.n_estimators=50",
]


@pytest.fixture()
def repo_root() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole pipeline run once per session on the tiny enterprise; yields (config, data dir)."""
    from github_ueba.cli import main
    from github_ueba.config import load

    tmp = tmp_path_factory.mktemp("tiny-run")
    overrides = TINY + [f"paths.data={tmp}", f"paths.models={tmp}/models", "tracking.enabled=false"]
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        assert main(["run", *overrides]) == 0
        cfg = load(overrides)
    finally:
        os.chdir(cwd)
    return cfg, tmp
