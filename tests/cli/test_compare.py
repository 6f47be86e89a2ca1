"""`compare`: a study's finds and the papers' models re-measured together, with charts and a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shufflenet_nas.cli.app import app
from tests.results.studies import small_study

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def test_compare_re_measures_against_v2_1x_and_writes_charts_and_a_report(tmp_path: Path) -> None:
    study = small_study(tmp_path / "cpu-146M-mixed")
    args = ["compare", str(study), "--rounds", "5", "--runs", "1", "--out", str(tmp_path / "cmp"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {row["label"]: row for row in data["rows"]}
    assert set(rows) == {"best V2-style", "best V1-style", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0"}
    reference = rows["shufflenet_v2_x1_0"]  # not in the study: added as the reference
    assert data["reference"] == "shufflenet_v2_x1_0" and reference["ratio"] == 1.0
    assert reference["is_reference"] and reference["added"] and reference["genotype"].endswith("in32-cls1000")
    assert reference["proxy"] == reference["params"] == 2_278_604  # scored as the study's proxy (params) scores
    for row in rows.values():
        assert row["ms"] > 0 and row["ratio_low"] <= row["ratio"] <= row["ratio_high"]
    assert (
        rows["shufflenet_v2_x0_5"]["paper_top1"] == pytest.approx(100 - 39.7)
        and rows["best V2-style"]["proxy"] == 1.4e6
    )
    assert set(data["stages"]) == {"best V2-style", "shufflenet_v2_x1_0"}
    parts = [part["part"] for part in data["stages"]["shufflenet_v2_x1_0"]]
    assert parts == ["stem", "stage2", "stage3", "stage4", "head"]
    assert data["provenance"]["normalized"] is False and data["provenance"]["rounds"] == 5
    files = {Path(path).name for path in data["files"]}
    assert files == {
        "latency_vs_proxy.png",
        "mflops_vs_latency.png",
        "stage_latency.png",
        "report.md",
        "comparison.json",
    }
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["rows"] == data["rows"]
    for name in files - {"report.md", "comparison.json"}:
        assert (tmp_path / "cmp" / name).read_bytes().startswith(PNG)
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "![latency_vs_proxy](latency_vs_proxy.png)" in report and "| best V2-style | 1 |" in report
    guidelines = data["guidelines"]  # each row explained; on the cpu target G4 also profiled
    assert set(guidelines) == set(rows)
    for label, explained in guidelines.items():
        assert explained["network"]["operators"] == rows[label]["operators"]
        assert 0 < explained["measured"]["elementwise"] < 1 and explained["measured"]["runs"] == 5
    v1 = {v["guideline"] + v["title"]: v["better"] for v in guidelines["best V1-style"]["vs_reference"]}
    assert v1["G2group convs"] == "reference" and v1["G3fragmentation"] == "this" and "G4element-wise, measured" in v1
    assert "## ShuffleNet V2's guidelines" in report and "| G1 c1:c2 | G1 excess |" in report
    assert "best V1-style vs shufflenet_v2_x1_0:\n\n- G1 equal widths: 1x1 MAC" in report


def test_compare_bad_input(tmp_path: Path) -> None:
    study = small_study(tmp_path / "s")
    few = runner.invoke(app, ["compare", str(study), "--rounds", "3"])
    assert few.exit_code == 2 and "--rounds 3, --runs 5: give 5 or more rounds" in few.stderr
    (tmp_path / "file").write_text("")
    blocked = runner.invoke(app, ["compare", str(study), "--out", str(tmp_path / "file" / "cmp")])
    assert blocked.exit_code == 2 and "cannot create the folder" in blocked.stderr and "ms" not in blocked.stdout
    missing = runner.invoke(app, ["compare", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "holds no study.db" in missing.stderr


def test_compare_a_study_in_a_storage_url(tmp_path: Path) -> None:
    study = small_study(tmp_path / "cpu-146M-mixed")
    url = f"sqlite:///{study / 'study.db'}"
    args = ["compare", "--storage", url, "--study", "cpu-146M-mixed", "--rounds", "5", "--runs", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "cpu-146M-mixed: re-measured together on cpu" in result.stdout
    assert "ShuffleNet V2 guidelines, whole networks" in result.stdout and "G4 time" in result.stdout
    assert "best V2-style vs shufflenet_v2_x1_0:" in result.stdout and "G4 element-wise, measured: " in result.stdout
    both = runner.invoke(app, ["compare", str(study), "--storage", url])
    neither = runner.invoke(app, ["compare"])
    assert both.exit_code == 2 and "--storage URL with --study NAME, not both" in both.stderr
    assert neither.exit_code == 2 and "give a results/<study> directory, or --storage URL" in neither.stderr
    assert "not both" not in neither.stderr
