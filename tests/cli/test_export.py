"""`export`: a study's architectures (with their trained weights) or any ARCH, in every format; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from shufflenet_nas import resolve_arch
from shufflenet_nas.cli.app import app
from tests.results.studies import small_study

runner = CliRunner()


def test_export_a_studys_front_and_its_trained_weights(shapes_dir: Path, tmp_path: Path) -> None:
    study = small_study(tmp_path / "cpu-146M-mixed")
    trained = runner.invoke(
        app, ["train", str(study), "--trial", "1", "--no-baselines", "--data", str(shapes_dir), "--epochs", "1"]
    )
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["export", str(study), "--pareto", "--format", "json", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "out").glob("*.json"))
    assert len(files) == 2 and result.stdout.count("wrote ") == 2
    described = {json.loads(f.read_text())["provenance"]["trial"]: json.loads(f.read_text()) for f in files}
    assert described[1]["accuracy"]["accuracy_top1"] is not None and described[1]["weights"].startswith("trained")
    assert described[1]["genotype"].endswith("in32-cls4")  # as trained: the data's classes
    assert described[2]["trial"]["latency_ms"] == 4.0 and described[2]["weights"] == "fresh (seed 0)"

    weights = runner.invoke(app, ["export", str(study), "--trial", "1", "--format", "state-dict", "--json"])
    assert weights.exit_code == 0, weights.output
    path = Path(json.loads(weights.stdout)[0]["path"])
    exported = torch.load(path, weights_only=True)["state_dict"]
    (trained_file,) = (study / "weights").glob("*.pt")  # what `train` wrote for trial 1
    trained_state = torch.load(trained_file, weights_only=True)["state_dict"]
    assert all(torch.equal(exported[key], trained_state[key]) for key in trained_state)
    assert resolve_arch(str(path)).to_string() == described[1]["genotype"]


def test_export_a_study_from_a_storage_url_with_its_trained_weights(shapes_dir: Path, tmp_path: Path) -> None:
    study = small_study(tmp_path / "cpu-146M-mixed")
    train = ["train", str(study), "--trial", "1", "--no-baselines", "--data", str(shapes_dir), "--epochs", "1"]
    assert runner.invoke(app, train).exit_code == 0
    url = f"sqlite:///{study / 'study.db'}"
    args = ["--storage", url, "--study", "cpu-146M-mixed", "--trial", "1", "--format", "json", "--out", str(tmp_path)]
    result = runner.invoke(app, ["export", *args, "--json"])
    assert result.exit_code == 0, result.output
    (written,) = json.loads(result.stdout)
    data = json.loads(Path(written["path"]).read_text())
    assert (data["provenance"]["study"], data["provenance"]["trial"]) == ("cpu-146M-mixed", 1)
    assert data["weights"].startswith("trained") and data["trial"]["latency_ms"] == 2.5

    for weights in (study / "weights").glob("*.pt"):
        weights.unlink()  # the recorded weights are gone: said, and the architecture goes with fresh weights
    again = runner.invoke(app, ["export", *args])
    assert again.exit_code == 0, again.output
    assert "which is no file now; exporting it with fresh weights" in again.stderr
    assert "fresh (seed 0) weights" in again.stdout


def test_export_an_architecture_as_standalone_python(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "shufflenet_v2_x0_5", "--format", "py", "--out", str(tmp_path / "v2.py")])
    assert result.exit_code == 0, result.output
    assert "max |diff| 0.00e+00" in result.stdout and "fresh (seed 0) weights" in result.stdout
    assert "class ShuffleV2Unit" in (tmp_path / "v2.py").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["shufflenet_v2_x0_5", "--format", "xml"],
            "--format 'xml' unknown; use one of json, onnx, pt2, py, state-dict",
        ),
        (
            ["shufflenet_v2_x0_5", "--pareto"],
            "--pareto picks from a study; SOURCE shufflenet_v2_x0_5 is an architecture",
        ),
        (["{study}", "--trial", "9"], "trial 9 of study 'cpu-146M-mixed' is no result"),
        (["{study}", "--pareto", "--out", "{tmp}/one.json"], "architectures need a folder, not a file name"),
        (["{study}"], "say which architectures: --pareto, --best-v1, --best-v2 or --trial"),
        (["{tmp}"], "a directory with no study.db"),
        (["{study}", "--storage", "sqlite:///{tmp}/x.db", "--pareto"], "--storage URL with --study NAME, not both"),
        (["--pareto"], "give a results/<study> directory, or --storage URL with --study NAME"),
        (["{study}", "--study", "other", "--pareto"], "--study other names a study in --storage"),
        (["shufflenet_v2_x0_5", "--out", "{tmp}/file/x.json"], "file/x.json: cannot create its folder (File exists)"),
        (["no_such_net"], "ARCH: 'no_such_net' is not a baseline name"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(args: list[str], message: str, tmp_path: Path) -> None:
    study = small_study(tmp_path / "cpu-146M-mixed")
    (tmp_path / "file").write_text("")
    result = runner.invoke(app, ["export", *(a.format(study=study, tmp=tmp_path) for a in args)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
