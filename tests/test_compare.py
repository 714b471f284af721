"""Our model vs the paper's method on the same features, from conf/ and from a composed params file."""

from __future__ import annotations

import math

from dvc.utils.hydra import compose_and_dump

from github_ueba.compare import compare, variant_config

from conftest import REPO, TINY


def test_compare_reports_both_variants_on_the_same_labels(tiny_run, monkeypatch):
    cfg, data = tiny_run
    monkeypatch.chdir(REPO)
    overrides = TINY + [f"paths.data={data}", f"paths.models={data}/models", "tracking.enabled=false"]
    table = compare(overrides)
    assert list(table.columns) == ["ours", "paper"]
    for name in table.columns:
        assert 0 <= table.loc["average_precision", name] <= 1
    assert not math.isclose(table.loc["average_precision", "ours"], table.loc["average_precision", "paper"])


def test_variant_from_params_file_takes_the_group_and_keeps_the_rest(tmp_path):
    params = tmp_path / "params.yaml"
    compose_and_dump(str(params), str(REPO / "conf"), None, "config", str(REPO), ["seed=7", "window.detect_days=9"])
    paper = variant_config([], str(params), ["model=paper"])
    assert paper.model.name == "paper" and paper.model.threshold.policy == "fixed"
    assert paper.model.random_state == 7 and paper.window.detect_days == 9
    ours = variant_config(["model.n_estimators=11"], str(params), [])
    assert ours.model.name == "isolation_forest" and ours.model.n_estimators == 11
