"""The CPU-side logic of benchmarks/proxy_gaming.py: which probes it builds, their costs, and one tiny run."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from shufflenet_nas import BASELINES, count_cost
from tests.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def gaming() -> ModuleType:
    return load_benchmark("proxy_gaming")


def _probes(gaming: ModuleType, name: str) -> dict[str, object]:
    return {probe.label: probe for probe in gaming.probes_for(name, BASELINES[name].genotype)}


def test_v2_probes_change_one_dimension(gaming: ModuleType) -> None:
    base = BASELINES["shufflenet_v2_x1_0"].genotype
    probes = _probes(gaming, "shufflenet_v2_x1_0")
    assert probes["stem 24->12"].genotype.stem_channels == 12
    assert probes["stem 24->48"].genotype.stem_channels == 48
    assert {s.split_ratio for s in probes["split 0.25 all"].genotype.stages} == {0.25}
    assert probes["head 1024->1536"].genotype.head_channels == 1536
    assert all(s.se for s in probes["SE all"].genotype.stages)
    assert all(s.residual for s in probes["residual on all"].genotype.stages)
    assert {s.kernel for s in probes["kernel 7 all"].genotype.stages} == {7}
    assert not any(s.shuffle for s in probes["shuffle off all"].genotype.stages)
    for label in ("SE all", "kernel 5 all", "split 0.75 all"):  # nothing else moved
        changed = probes[label].genotype
        assert (changed.stem_channels, changed.head_channels) == (base.stem_channels, base.head_channels)
        assert [s.out_channels for s in changed.stages] == [s.out_channels for s in base.stages]


@pytest.mark.parametrize("name", ["shufflenet_v2_x1_0", "shufflenet_v1_g3_x1_0"])
def test_depth_probes_keep_flops(gaming: ModuleType, name: str) -> None:
    base = BASELINES[name].genotype
    depth = [probe for label, probe in _probes(gaming, name).items() if label.startswith("depth")]
    assert len(depth) == 2
    target = count_cost(base).mflops
    for probe, delta in zip(depth, (1, -1), strict=True):
        assert [s.repeats for s in probe.genotype.stages] == [s.repeats + delta for s in base.stages]
        assert abs(count_cost(probe.genotype).mflops - target) < 0.02 * target


def test_v1_probes_and_paper_deltas(gaming: ModuleType) -> None:
    base = BASELINES["shufflenet_v1_g3_x1_0"].genotype
    probes = _probes(gaming, "shufflenet_v1_g3_x1_0")
    assert not any(label.startswith(("split", "head")) for label in probes)  # V2-only dimensions
    assert not any(s.residual for s in probes["residual off all"].genotype.stages)  # the paper model has it
    # V1 Table 3: g3 1x without shuffle is 1.9 points less accurate; 1.5x is 4.1 points more.
    assert gaming.paper_delta_top1(base, probes["shuffle off all"].genotype) == pytest.approx(-1.9)
    assert gaming.paper_delta_top1(base, probes["ref v1_g3_x1_5"].genotype) == pytest.approx(4.1)
    assert gaming.paper_delta_top1(base, probes["SE all"].genotype) is None


def test_tiny_run_writes_every_delta(gaming: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gaming.json"
    argv = ["--resolution", "32", "--seeds", "0,1", "--proxies", "relu_count,params"]
    report = gaming.main([*argv, "--models", "shufflenet_v2_x1_0", "--json", str(out)])
    assert json.loads(out.read_text())["proxies"] == ["relu_count", "params"]
    (model,) = report["models"]
    assert model["seed_spread"] == {"relu_count": 0.0, "params": 0.0}  # neither depends on the seed
    rows = {row["probe"]: row for row in model["probes"]}
    assert rows["head 1024->1536"]["delta"]["params"] == rows["head 1024->1536"]["d_params"]
    assert rows["SE all"]["delta_per_mflop"]["params"] is None  # +0.04 MFLOPs: no slope
    assert rows["ref v2_x1_5"]["slope_vs_widening"]["params"] == pytest.approx(1.0)
    assert rows["depth +1/stage c108/216/432"]["delta_in_spreads"]["relu_count"] is None
    printed = capsys.readouterr().out
    assert "Δscore per added MFLOP" in printed and "exact" in printed
