"""`train`: an architecture or a study's finds trained on an ImageFolder, kill-safe, accuracy back in the study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from typer.testing import CliRunner

from shufflenet_nas.cli.app import app
from shufflenet_nas.search_spaces import Genotype
from tests.results.studies import T, small_study, write_study_dir

runner = CliRunner()
FAST = ["--epochs", "2", "--batch-size", "32", "--threads", "1", "--device", "cpu"]


def _train(*args: str) -> dict:
    result = runner.invoke(app, ["train", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_an_architecture_reports_every_epoch_and_writes_weights(
    shapes_dir: Path, tiny_v2: Genotype, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["train", tiny_v2.to_string(), "--data", str(shapes_dir), *FAST, "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "data: imagefolder at" in result.stderr and "recipe: 2 epochs, batch 32, SGD nesterov" in result.stderr
    assert "epoch   1/2  loss" in result.stderr and "epoch   2/2  loss" in result.stderr and "img/s" in result.stderr
    assert f"{tiny_v2.arch_id}  top-1 " in result.stdout and "after 2 epochs on 52 held-out images" in result.stdout
    data = _train(tiny_v2.to_string(), "--data", str(shapes_dir), *FAST, "--out", str(tmp_path))
    assert data["reused"] and len(data["history"]) == 2 and data["data"]["classes"] == 4
    assert data["weights"] == str(tmp_path / f"{tiny_v2.arch_id}.pt")
    assert {"loss", "top1", "top5", "images_per_s", "lr"} <= set(data["history"][0])
    measured = runner.invoke(app, ["describe", data["weights"]])  # the weights file is an ARCH
    assert measured.exit_code == 0 and "in32-cls4" in measured.output


def test_training_learns_the_shapes_well_above_chance(shapes_dir: Path, tiny_v2: Genotype, tmp_path: Path) -> None:
    data = _train(
        tiny_v2.to_string(), "--data", str(shapes_dir), "--epochs", "12", "--threads", "1", "--out", str(tmp_path)
    )
    losses = [epoch["loss"] for epoch in data["history"]]
    assert losses[-1] < 0.7 * losses[0]
    assert data["accuracy_top1"] >= 0.6  # 4 classes: chance is 25% on the 52 held-out images (75% in 12 epochs)


def test_sigkill_mid_training_resumes_to_the_weights_of_an_uninterrupted_run(
    shapes_dir: Path, tiny_v2: Genotype, tmp_path: Path
) -> None:
    arch = tiny_v2.to_string()
    args = ["--data", str(shapes_dir), "--epochs", "14", "--batch-size", "32", "--threads", "1", "--seed", "3"]
    whole = _train(arch, *args, "--out", str(tmp_path / "whole"))
    command = [sys.executable, "-m", "shufflenet_nas", "train", arch, *args, "--out", str(tmp_path / "killed")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    checkpoint = tmp_path / "killed" / f"{tiny_v2.arch_id}.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # into the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL and checkpoint.exists()
    assert not (tmp_path / "killed" / f"{tiny_v2.arch_id}.pt").exists()
    resumed = _train(arch, *args, "--out", str(tmp_path / "killed"))
    assert 1 <= resumed["resumed_from_epoch"] < 14
    assert [e["top1"] for e in resumed["history"]] == [e["top1"] for e in whole["history"]]
    first = torch.load(whole["weights"], weights_only=True)["state_dict"]
    second = torch.load(resumed["weights"], weights_only=True)["state_dict"]
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_train_a_study_records_accuracy_that_show_and_validate_proxy_read(shapes_dir: Path, tmp_path: Path) -> None:
    study = small_study(tmp_path / "cpu-146M-mixed")
    args = ["--data", str(shapes_dir), "--epochs", "1", "--batch-size", "64", "--threads", "1", "--device", "cpu"]
    result = runner.invoke(app, ["train", str(study), "--pareto", *args])
    assert result.exit_code == 0, result.output
    assert "1/3 trial 1" in result.stderr and "3/3 shufflenet_v2_x0_5" in result.stderr
    assert "recorded in study cpu-146M-mixed" in result.stdout and "top-1 %" in result.stdout
    weights = sorted(p.stem for p in (study / "weights").glob("*.pt"))
    assert len(weights) == 3 and not list((study / "weights").glob("*.ckpt"))

    shown = runner.invoke(app, ["show", str(study), "--json"])
    rows = {row["number"]: row for row in json.loads(shown.stdout)["pareto"]}
    assert set(rows) == {1, 2} and all(0 <= rows[n]["accuracy_top1"] <= 1 for n in rows)
    trained = json.loads(shown.stdout)["trained"]
    assert set(trained) == set(weights) and all(r["recipe"]["epochs"] == 1 for r in trained.values())
    assert all(r["data"]["classes"] == 4 and r["weights"].startswith("weights/") for r in trained.values())
    table = runner.invoke(app, ["show", str(study)])
    assert "top-1 %" in table.stdout and "3 architectures trained with one recipe and seed 0" in table.stdout

    again = runner.invoke(app, ["train", str(study), "--pareto", *args, "--json"])
    assert again.exit_code == 0 and all(item["reused"] for item in json.loads(again.stdout))
    validated = runner.invoke(app, ["validate-proxy", "--against", str(study), "--proxy", "params", "--json"])
    assert validated.exit_code == 0, validated.output
    assert json.loads(validated.stdout)["n"] == 3


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["shufflenet_v2_x0_5", "--pareto"],
            2,
            "--pareto picks from a study; SOURCE shufflenet_v2_x0_5 is an architecture",
        ),
        (["shufflenet_v2_x0_5", "--trial", "3"], 2, "--trial picks from a study"),
        (["{tmp}"], 2, "a directory with no study.db; give a results/<study> directory or ARCH"),
        (["{study}"], 2, "say which architectures: --pareto, --best-v1, --best-v2 or --trial"),
        (["{v2_study}", "--best-v1"], 2, "--best-v1: study 'v2' has no best V1-style (the study did not search V1"),
        (["{study}", "--trial", "9"], 2, "trial 9 of study 'cpu-146M-mixed' is no result"),
        (["{study}", "--pareto", "--out", "x"], 2, "--out: a study's weights go to"),
        (["shufflenet_v2_x0_5", "--epochs", "0"], 2, "--epochs 0: give a whole number, 1 or more"),
        (["shufflenet_v2_x0_5", "--lr", "-1"], 2, "--lr -1.0: the learning rate must be a positive number"),
        (["shufflenet_v2_x0_5", "--device", "gpu"], 1, "sees no CUDA GPU; use --device cpu"),
        (["no_such_model"], 2, "ARCH: 'no_such_model' is not a baseline name"),
    ],
)
def test_bad_input_is_one_line_with_an_exit_code(
    args: list[str], code: int, message: str, shapes_dir: Path, tmp_path: Path
) -> None:
    if torch.cuda.is_available() and "gpu" in args:
        pytest.skip("this machine has a GPU")
    study = small_study(tmp_path / "cpu-146M-mixed")
    v2_study = small_study(tmp_path / "v2", family="v2")
    args = [a.format(tmp=tmp_path / "empty", study=study, v2_study=v2_study) for a in args]
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["train", "--data", str(shapes_dir), "--epochs", "1", *args])  # the last --epochs wins
    assert result.exit_code == code, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()[-1]) > 0
    assert "Traceback" not in result.output


def test_missing_data_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "shufflenet_v2_x0_5", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "--data" in result.stderr and "no such directory" in result.stderr


def test_search_proxy_refine_trains_the_front_and_ranks_by_top1(shapes_dir: Path, tmp_path: Path) -> None:
    args = ["search", "--target", "cpu", "--budget", "10MFLOPs", "--data", str(shapes_dir), "--max-time", "0.05"]
    args += ["--results-dir", str(tmp_path), "--study", "refined", "--seed", "0"]
    result = runner.invoke(app, [*args, "--n-trials", "4", "--proxy-refine", "1", "--refine-epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "--proxy-refine 1: training on imagefolder" in result.stderr and "epoch   1/1" in result.stderr
    assert (
        "Pareto front (latency vs top-1)" in result.stdout and "ranked by trained top-1, not the proxy" in result.stdout
    )
    summary = json.loads((tmp_path / "refined" / "pareto.json").read_text())
    assert summary["settings"]["rank_by"] == "accuracy_top1" and summary["pareto"]
    assert all(row["rank_by"] == "accuracy_top1" and row["accuracy_top1"] is not None for row in summary["pareto"])
    assert len(summary["trained"]) == len(list((tmp_path / "refined" / "weights").glob("*.pt"))) >= 1
    again = runner.invoke(app, [*args, "--n-trials", "1"])  # a run without --proxy-refine ranks by the proxy
    assert again.exit_code == 0, again.output
    assert "Pareto front (latency vs proxy)" in again.stdout and "ranked by trained top-1" not in again.stdout
    refused = runner.invoke(app, ["search", "--proxy-refine", "2", "--n-trials", "1"])
    assert refused.exit_code == 2 and "--proxy-refine 2: give 0 (off), or 1 or more with --data DIR" in refused.stderr


def test_a_study_run_with_other_settings_is_refused_before_anything_trains(shapes_dir: Path, tmp_path: Path) -> None:
    study = small_study(tmp_path / "cpu-146M-mixed")
    args = ["--data", str(shapes_dir), "--batch-size", "64", "--threads", "1", "--device", "cpu"]
    first = runner.invoke(app, ["train", str(study), "--trial", "1", "--no-baselines", "--epochs", "1", *args])
    assert first.exit_code == 0, first.output
    refused = runner.invoke(app, ["train", str(study), "--pareto", "--epochs", "2", *args])
    assert refused.exit_code == 1 and "is from another run: --epochs 1 (now --epochs 2)" in refused.stderr
    assert "pass --restart to replace the weights that differ" in refused.stderr and "epoch   1/" not in refused.stderr
    assert len(list((study / "weights").glob("*.pt"))) == 1  # nothing else trained
    empty = write_study_dir(tmp_path / "empty", [T(state=optuna.trial.TrialState.FAIL)])
    nothing = runner.invoke(app, ["train", str(tmp_path / "empty"), "--pareto", *args])
    assert nothing.exit_code == 2 and "nothing selected: study 'empty' has no Pareto front" in nothing.stderr
    assert empty.study_name == "empty"


def test_a_study_trains_at_the_resolution_it_was_searched_at(shapes_dir: Path, tmp_path: Path) -> None:
    study = small_study(tmp_path / "s", resolution=16)
    args = ["--data", str(shapes_dir), "--epochs", "1", "--threads", "1", "--no-baselines", "--trial", "1"]
    result = runner.invoke(app, ["train", str(study), *args, "--json"])
    assert result.exit_code == 0, result.output
    assert "4 classes, 204 train / 52 val images, 16x16" in result.stderr
    assert json.loads(result.stdout)[0]["genotype"].endswith("in16-cls4")
    summary = json.loads((study / "pareto.json").read_text())  # rewritten with the accuracy
    assert summary["trained"] and summary["pareto"][0]["accuracy_top1"] is not None


def test_a_diverged_run_exits_1(shapes_dir: Path, tiny_v2: Genotype, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            tiny_v2.to_string(),
            "--data",
            str(shapes_dir),
            "--lr",
            "1e12",
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1 and "diverged (the loss became NaN or infinite); lower --lr" in result.stdout
