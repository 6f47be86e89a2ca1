"""`search --explain`: each best in ShuffleNet V2's guidelines beside V2 1.0x, and whether each holds on this device
(the latest `guidelines` run here, kept per device)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shufflenet_nas.cli.app import app
from tests.cli.test_guidelines import TINY as GUIDELINES
from tests.cli.test_search import TINY as SEARCH

runner = CliRunner()


def test_explain_before_and_after_a_guidelines_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHUFFLENET_NAS_CACHE_DIR", str(tmp_path / "cache"))  # no verdicts kept yet
    search = ["search", *SEARCH, "--n-trials", "7", "--confirm-rounds", "0", "--results-dir", str(tmp_path)]
    before = runner.invoke(app, [*search, "--explain"])
    assert before.exit_code == 0, before.output
    assert "no readable `guidelines` run kept for it; run `shufflenet-nas guidelines --target cpu" in before.stdout

    measured = runner.invoke(app, [*GUIDELINES, "--json"])
    assert measured.exit_code == 0, measured.output
    assert "for `search --explain`" in measured.stderr
    verdicts = {g["key"]: g["verdict"] for g in json.loads(measured.stdout)["guidelines"]}

    after = runner.invoke(app, [*search, "--n-trials", "1", "--explain", "--json"])
    assert after.exit_code == 0, after.output
    explanation = json.loads(after.stdout)["explain"]
    device = explanation["device"]
    assert device["device"].startswith("cpu/eager on ") and "batch 1" in device["setup"]
    assert {key: v["verdict"] for key, v in device["verdicts"].items()} == verdicts
    assert explanation["reference"] == "shufflenet_v2_x1_0"  # what each best gets: tests/results/test_explanation.py

    text = runner.invoke(app, [*search, "--n-trials", "1", "--explain"])
    assert text.exit_code == 0, text.output
    assert "on this device (cpu/eager on " in text.stdout


def test_a_stored_run_that_does_not_read_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shufflenet_nas.guidelines import stored_result
    from shufflenet_nas.guidelines.store import STORE, device_key
    from shufflenet_nas.nas.latency import MeasureConfig, software_provenance

    monkeypatch.setenv("SHUFFLENET_NAS_CACHE_DIR", str(tmp_path))
    config = MeasureConfig()
    (tmp_path / STORE).write_text(json.dumps({device_key(software_provenance(config)): {"guidelines": 3}}))
    with pytest.warns(RuntimeWarning, match="the guideline verdicts stored for this device do not read"):
        assert stored_result(config) is None
    (tmp_path / STORE).unlink()
    assert runner.invoke(app, [*GUIDELINES, "--json"]).exit_code == 0  # a good run, then one figure spoilt
    stored = json.loads((tmp_path / STORE).read_text())
    (key,) = stored
    assert key == device_key(software_provenance(config)) and key.endswith(", 1 thread(s), fp32")
    for spoil in ({"tables": []}, {"tables": [{**stored[key]["guidelines"][0]["tables"][0], "low": "abc"}]}):
        spoilt = {**stored[key], "guidelines": [{**stored[key]["guidelines"][0], **spoil}]}
        (tmp_path / STORE).write_text(json.dumps({key: spoilt}))
        with pytest.warns(RuntimeWarning, match="do not read"):
            assert stored_result(config) is None
    assert stored_result(MeasureConfig(target="onnxruntime")) is None  # another device key: none kept
