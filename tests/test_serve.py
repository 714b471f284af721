"""`mlflow models serve` on the promoted model: a real server process, real HTTP, same scores as in-process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from github_ueba import stages, tracking

from test_tracking import build_project, migrated_store

MLFLOW = Path(sys.executable).parent / "mlflow"
START_TIMEOUT = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_ping(url: str, process: subprocess.Popen, log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow models serve exited with {process.returncode}:\n{log_file.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow models serve not up after {START_TIMEOUT} s:\n{log_file.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (uvicorn and its workers), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.slow
def test_served_champion_returns_the_in_process_scores(tmp_path, monkeypatch, pytestconfig):
    uri = migrated_store(pytestconfig.cache, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    project = build_project(tmp_path)
    tracking.promote(project.cfg, version=project.version, reason="serve test")
    rows = project.table.loc[project.table["day"] >= pd.Timestamp(stages.read_window(project.cfg).detect_start)]
    rows = rows.head(40)
    features = list(project.detector.feature_names_in_)
    payload = {"dataframe_split": rows[["actor", *features]].to_dict(orient="split", index=False)}

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{MLFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # it execs `uvicorn` from PATH
    log_file = tmp_path / "serve.log"
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [str(MLFLOW), "models", "serve", "-m", tracking.champion_uri(project.cfg), "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_for_ping(url, process, log_file)
        request = urllib.request.Request(
            f"{url}/invocations", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = pd.DataFrame(json.loads(response.read())["predictions"])
        missing_features = {"dataframe_split": {"columns": ["actor"], "data": [["x"]]}}
        bad = urllib.request.Request(f"{url}/invocations", data=json.dumps(missing_features).encode(),
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=30)
        assert refused.value.code == 400
    finally:
        _stop(process)

    expected = project.detector.anomaly_score(rows)
    assert list(predictions.columns) == ["anomaly_score", "is_anomaly"] and len(predictions) == len(rows)
    pd.testing.assert_series_equal(predictions["anomaly_score"], pd.Series(expected, name="anomaly_score"),
                                   check_exact=False, rtol=0, atol=1e-12)
    assert (predictions["is_anomaly"] == (expected > 0)).all()
