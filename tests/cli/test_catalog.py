from __future__ import annotations

import json

from typer.testing import CliRunner

from shufflenet_nas import __version__
from shufflenet_nas.cli.app import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_baselines_json_has_every_baseline_with_its_difference() -> None:
    result = runner.invoke(app, ["baselines", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["shufflenet_v2_x1_0"]["params"] == 2_278_604
    assert rows["shufflenet_v2_x1_0"]["mflops_diff_pct"] == -0.75
    assert rows["shufflenet_v1_g3_x1_0"]["paper_top1_error"] == 32.6
    assert len(rows) == 33
    ablation = rows["shufflenet_v1_g8_x1_0_noshuffle"]
    assert (
        ablation["paper_top1_error"] == 37.6
        and ablation["counted_mflops"] == rows["shufflenet_v1_g8_x1_0"]["counted_mflops"]
    )
    assert ablation["genotype"].endswith("_noshuffle-head0-down_tv-fc_nobias-in224-cls1000")


def test_describe_json_keys(tiny_v2) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["describe", str(tiny_v2), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {"arch_id", "genotype", "mflops", "params", "memory_access", "operators"} <= data.keys()
    assert data["arch_id"] == tiny_v2.arch_id and len(data["stages"]) == 3


def test_describe_table_names_the_totals() -> None:
    result = runner.invoke(app, ["describe", "shufflenet_v2_x1_0"])
    assert result.exit_code == 0
    assert "MFLOPs 144.91" in result.output and "params 2,278,604" in result.output


def test_bad_arch_is_a_one_line_usage_error() -> None:
    result = runner.invoke(app, ["describe", "stem24s4-v1_n4_c233_g8"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: ARCH: stage 2: 233 channels not divisible by groups=8"]
    assert "Traceback" not in result.output


def test_space_lists_dimensions_and_bad_budget_exits_2() -> None:
    result = runner.invoke(app, ["space", "--json"])
    names = [d["name"] for d in json.loads(result.stdout)["dimensions"]]
    assert {"family", "v1.groups", "stage2.split", "stage3.kernel", "head.width"} <= set(names)
    bad = runner.invoke(app, ["space", "--budget", "lots"])
    assert bad.exit_code == 2 and "146MFLOPs" in bad.output


def test_space_shows_the_shuffle_gene_when_asked() -> None:
    plain = runner.invoke(app, ["space", "--json"])
    gene = runner.invoke(app, ["space", "--space-shuffle", "--json"])
    assert plain.exit_code == gene.exit_code == 0
    plain_names = [d["name"] for d in json.loads(plain.stdout)["dimensions"]]
    gene_dims = {d["name"]: d for d in json.loads(gene.stdout)["dimensions"]}
    assert not any(name.endswith(".shuffle") for name in plain_names)
    assert set(gene_dims) - set(plain_names) == {"stage2.shuffle", "stage3.shuffle", "stage4.shuffle"}
    assert gene_dims["stage2.shuffle"]["choices"] == "false, true"
    table = runner.invoke(app, ["space", "--space-shuffle"])
    assert table.exit_code == 0 and "stage4.shuffle" in table.output
