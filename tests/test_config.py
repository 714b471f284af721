"""The config schema, the Hydra composition, and the committed params.yaml."""

from __future__ import annotations

import pytest
import yaml

from github_ueba.cli import main
from github_ueba.config import ConfigError, compose, load, load_params, validate


def test_params_yaml_equals_default_composition(repo_root, tmp_path):
    """`dvc repro` reads params.yaml as committed, so it must be what `dvc exp run` would compose."""
    from dvc.utils.hydra import compose_and_dump

    out = tmp_path / "params.yaml"
    compose_and_dump(str(out), str(repo_root / "conf"), None, "config", str(repo_root), [])
    committed = yaml.safe_load((repo_root / "params.yaml").read_text())
    assert yaml.safe_load(out.read_text()) == committed, "params.yaml drifted from conf/: regenerate it"


def test_params_yaml_validates(repo_root):
    cfg = load_params(repo_root / "params.yaml")
    assert cfg.source.name == "simulator"
    assert cfg.model.random_state == cfg.seed


def test_overrides_select_groups_and_values(monkeypatch, repo_root):
    monkeypatch.chdir(repo_root)
    cfg = load(["source=files", "source.path=/tmp/exports", "model=paper", "window.detect_days=7"])
    assert cfg.source.name == "files" and cfg.source.path == "/tmp/exports"
    assert cfg.model.contamination == 0.1 and cfg.model.threshold.policy == "fixed"
    assert cfg.window.detect_days == 7


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("model.contamination", 0.7, "model.contamination"),
        ("model.contamination", "lots", "model.contamination"),
        ("window.lookback_days", -3, "window.lookback_days"),
        ("model.threshold.policy", "vibes", "model.threshold.policy"),
        ("model.max_features", 0, "model.max_features"),
        ("window.end", "yesterday", "window.end"),
    ],
)
def test_out_of_range_values_name_the_key(repo_root, key, value, expected):
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        validate(raw)


def test_wrong_type_and_unknown_key_name_the_key(repo_root):
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["model"]["n_estimators"] = "many"
    with pytest.raises(ConfigError, match="n_estimators"):
        validate(raw)
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["features"]["baseline_dayz"] = 3
    with pytest.raises(ConfigError, match="baseline_dayz"):
        validate(raw)


def test_unknown_source_is_rejected():
    with pytest.raises(ConfigError, match="source.name"):
        validate({"source": {"name": "splunk"}})


def test_cli_reports_config_errors_without_traceback(monkeypatch, repo_root, capsys):
    monkeypatch.chdir(repo_root)
    assert main(["train", "model.contamination=0.9"]) == 2
    err = capsys.readouterr().err
    assert "model.contamination" in err and "Traceback" not in err
    assert main(["ingest", "source=nonexistent"]) == 2
    assert "source" in capsys.readouterr().err


def test_compose_without_overrides_matches_schema_defaults(monkeypatch, repo_root):
    monkeypatch.chdir(repo_root)
    cfg = validate(compose([]))
    assert cfg.window.lookback_days == 181 and cfg.features.baseline_days == 60


def test_bots_by_name_or_by_deploy_key_share():
    import pandas as pd

    from github_ueba.bots import mark_bots

    base = pd.DataFrame({
        "actor": ["renovate[bot]", "deployer", "deployer", "alice", "alice"],
        "events": [5, 10, 10, 4, 6],
        "deploy_key_events": [0, 10, 9, 1, 0],
    })
    # deployer: 19 of 20 events by deploy key (0.95) -> bot; alice: 1 of 10 -> human
    assert mark_bots(base, [r"\[bot\]$"], 0.95).tolist() == [True, True, True, False, False]
    assert mark_bots(base, [r"\[bot\]$"], 0.99).tolist() == [True, False, False, False, False]
