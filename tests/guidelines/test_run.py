"""A tiny real guidelines run (4x4 features, x1, 5 rounds of 1 forward): its structure, JSON both ways, the
charts and guidelines.md."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.guidelines import VERDICTS, GuidelinesResult, run_guidelines, write_report
from shufflenet_nas.nas.latency import MeasureConfig


@pytest.fixture(scope="module")
def tiny() -> GuidelinesResult:
    seen: list[tuple[int, int, str]] = []
    result = run_guidelines(
        MeasureConfig(target="cpu"), quick=True, rounds=5, runs=1, resolution=4, on_progress=lambda *a: seen.append(a)
    )
    assert seen == [(1, 4, "G1 x1"), (2, 4, "G2 x1"), (3, 4, "G3 x1"), (4, 4, "G4 x1")]
    return result


def test_the_result_has_every_guideline_row_and_its_provenance(tiny: GuidelinesResult) -> None:
    assert [g.key for g in tiny.guidelines] == ["G1", "G2", "G3", "G4"]
    assert (tiny.widths, tiny.width_set, tiny.batch, tiny.resolution) == ((1,), "arm", 1, 4)
    assert (tiny.paper_device, tiny.paper_unit) == ("Snapdragon 810, 1 thread", "images/s")
    assert [len(g.tables[0].rows) for g in tiny.guidelines] == [4, 4, 5, 4]
    for guideline in tiny.guidelines:
        table = guideline.tables[0]
        assert table.low <= table.ratio <= table.high and table.verdict in VERDICTS
        assert guideline.verdict == table.verdict  # one width: its verdict is the guideline's
        first = table.rows[0]
        assert (first.ratio, first.relative) == (1.0, 1.0) and all(row.ms > 0 and row.mac > 0 for row in table.rows)
    assert tiny.guideline("G1").tables[0].rows[0].paper == 76.2
    assert tiny.images_per_s(first) == pytest.approx(1000 / first.ms)
    p = tiny.provenance
    assert (p["target"], p["threads"], p["rounds"], p["runs_per_round"], p["normalized"]) == ("cpu", 1, 5, 1, False)
    assert {"device", "torch", "dtype", "batch"} <= set(p)


def test_to_dict_is_json_and_reads_back(tiny: GuidelinesResult) -> None:
    data = json.loads(json.dumps(tiny.to_dict()))
    assert GuidelinesResult.from_dict(data) == tiny
    g1 = data["guidelines"][0]
    assert g1["verdict"] == tiny.guidelines[0].verdict and g1["tables"][0]["rows"][0]["paper_relative_throughput"] == 1


def test_the_paper_column_names_its_unit(tiny: GuidelinesResult) -> None:
    assert tiny.paper_column == "paper images/s (batch 1)"
    gpu = replace(tiny, paper_unit="batches/s", paper_batch=8, batch=8)
    assert gpu.paper_column == "paper batches/s (batch 8)"
    row = gpu.guidelines[0].tables[0].rows[0]
    assert gpu.images_per_s(row) == pytest.approx(8000 / row.ms)


def test_charts_and_the_report_are_written(tiny: GuidelinesResult, tmp_path: Path) -> None:
    paths = write_report(tiny, tmp_path / "out")
    assert [p.name for p in paths] == ["g1.png", "g2.png", "g3.png", "g4.png", "guidelines.md", "guidelines.json"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths[:4])
    markdown = (tmp_path / "out" / "guidelines.md").read_text()
    assert "![G3](g3.png)" in markdown and "| G2 | excessive group convolution" in markdown
    assert "t(1:1) / t(1:12)" in markdown and str(tiny.provenance["device"]) in markdown
    assert GuidelinesResult.from_dict(json.loads(paths[-1].read_text())) == tiny


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"widths": (3,)}, r"widths=\(3,\): use some of 1, 2, 4"),
        ({"widths": ()}, r"widths=\(\)"),
        ({"resolution": 0}, "resolution=0: use 1 to 224 pixels"),
        ({"resolution": 100000}, r"resolution=100000: use 1 to 224 pixels \(the paper's feature maps are 56\)"),
        ({"rounds": 3}, "rounds=3, runs=5: give 5 or more rounds"),
    ],
)
def test_bad_arguments_name_the_value(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        run_guidelines(MeasureConfig(target="cpu"), **{"resolution": 4, **arguments})  # type: ignore[arg-type]


def test_the_package_and_its_results_import_without_torch() -> None:
    program = (
        "import sys; from shufflenet_nas.guidelines import GuidelinesResult, run_guidelines, write_report, GUIDELINES; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "[]"
