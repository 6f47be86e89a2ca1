from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from shufflenet_nas.cli.app import app
from shufflenet_nas.nas.latency import _normalisation
from shufflenet_nas.results import load_study

runner = CliRunner()
TINY = [
    "--target",
    "cpu",
    "--budget",
    "12M",
    "--resolution",
    "32",
    "--proxy",
    "params",
    "--threads",
    "1",
    "--max-time",
    "0.02",
    "--seed",
    "0",
]


def test_search_then_show(tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", *TINY, "--n-trials", "6", "--results-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["study"] == "cpu-12M-mixed" and data["counts"]["trials"] == 6
    assert data["pareto"] and set(data["best"]) <= {"V1-style", "V2-style"}
    study_dir = tmp_path / "cpu-12M-mixed"
    assert json.loads((study_dir / "pareto.json").read_text())["pareto"] == data["pareto"]
    assert "| trial | family |" in (study_dir / "summary.md").read_text()
    shown = runner.invoke(app, ["show", str(study_dir)])
    assert shown.exit_code == 0 and "Pareto front" in shown.output and "best " in shown.output
    for percent, word, ms, reference_ms in re.findall(
        r"(\d+\.\d)% (lower|higher) latency than \S+ \((\S+) vs (\S+) ms", shown.output
    ):
        shown_change = float(percent) if word == "higher" else -float(percent)
        half = 0.0005  # the milliseconds are printed to 3 decimals: the change lies between these bounds
        low = ((float(ms) - half) / (float(reference_ms) + half) - 1) * 100
        high = ((float(ms) + half) / (float(reference_ms) - half) - 1) * 100
        assert low - 0.05 <= shown_change <= high + 0.05 and (shown_change < 0) == (low + high < 0)
    by_storage = runner.invoke(app, ["show", "--storage", f"sqlite:///{study_dir / 'study.db'}", "--json"])
    assert json.loads(by_storage.stdout)["pareto"] == data["pareto"]


def test_search_with_the_shuffle_gene(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["search", *TINY, "--n-trials", "8", "--space-shuffle", "--results-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["study"] == "cpu-12M-mixed+shuffle"
    study = optuna.load_study(
        study_name="cpu-12M-mixed+shuffle", storage=f"sqlite:///{tmp_path}/cpu-12M-mixed+shuffle/study.db"
    )
    assert study.user_attrs["shuffle"] == [False, True]
    assert "stage2.shuffle: false, true" in study.user_attrs["space"]
    seeded = [t.user_attrs["baseline"] for t in study.trials if "baseline" in t.user_attrs]
    assert seeded and not any(name.endswith("_noshuffle") for name in seeded)  # ablations seed no search
    assert any(name.endswith(".shuffle") for t in study.trials for name in t.params)


def test_search_errors_are_one_line(tmp_path: Path) -> None:
    no_gpu = runner.invoke(app, ["search", "--target", "gpu", "--results-dir", str(tmp_path)])
    assert no_gpu.exit_code == 1 and len(no_gpu.output.strip().splitlines()) == 1 and "GPU" in no_gpu.output
    bad_budget = runner.invoke(app, ["search", "--budget", "146MB", "--results-dir", str(tmp_path)])
    assert bad_budget.exit_code == 2 and "146MFLOPs" in bad_budget.output
    bad_proxy = runner.invoke(app, ["search", "--proxy", "train", "--results-dir", str(tmp_path)])
    assert bad_proxy.exit_code == 2 and "--data" in bad_proxy.output
    bad_floor = runner.invoke(app, ["search", "--proxy-floor", "fast", "--results-dir", str(tmp_path)])
    assert bad_floor.exit_code == 2 and len(bad_floor.output.strip().splitlines()) == 1
    assert "--proxy-floor fast is neither a finite number nor a baseline name" in bad_floor.output
    missing = runner.invoke(app, ["show", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "study.db" in missing.output
    assert not (tmp_path / "cpu-146M-mixed").exists()


def test_ctrl_c_stops_cleanly_and_keeps_results(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "shufflenet_nas",
        "search",
        *TINY,
        "--n-trials",
        "10000",
        "--study",
        "sigint",
        "--results-dir",
        str(tmp_path),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    storage = f"sqlite:///{tmp_path / 'sigint' / 'study.db'}"
    deadline = time.monotonic() + 120
    complete = 0
    while complete < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name="sigint", storage=storage).trials
        except Exception:  # the study does not exist yet
            continue
        complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    if complete < 3:
        process.kill()
        raise AssertionError(f"the search did not get going: {process.communicate()[1][-2000:]}")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert "Pareto front" in stdout
    trials = optuna.load_study(study_name="sigint", storage=storage).trials
    states = [t.state for t in trials]
    waiting = optuna.trial.TrialState.WAITING  # seeded baselines not reached yet run when the study resumes
    assert set(states) <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, waiting}
    assert states.count(optuna.trial.TrialState.FAIL) <= 1 and states.count(optuna.trial.TrialState.COMPLETE) >= 3
    assert (tmp_path / "sigint" / "pareto.json").is_file()


def test_a_resumed_lookup_table_search_re_measures_its_front_in_the_studys_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["search", *TINY, "--latency", "lut", "--n-trials", "6", "--confirm-rounds", "0"]
    args += ["--results-dir", str(tmp_path), "--study", "lut"]
    assert runner.invoke(app, args).exit_code == 0
    anchor = load_study(tmp_path / "lut").user_attrs["speed_anchor_ms"]
    lowered = {key: 0.8 * value for key, value in _normalisation._anchors.items()}
    monkeypatch.setattr(_normalisation, "_anchors", lowered)  # the device's anchor was lowered since
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    remeasured = load_study(tmp_path / "lut").user_attrs["remeasured"]
    assert len(remeasured) >= 2 and {r["reference_anchor_ms"] for r in remeasured.values()} == {anchor}
