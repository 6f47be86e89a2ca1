from __future__ import annotations

import json
import subprocess
import sys

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


def test_describe_explains_each_stage_in_the_v2_guidelines_against_v2_1x(tiny_v2) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["describe", str(tiny_v2), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    sections = data["guidelines"]["sections"]
    assert [s["name"] for s in sections] == ["stem", "stage2", "stage3", "stage4", "head"]
    assert all(s["balance_worst"] == 1.0 for s in sections[1:])  # every 1x1 conv of tiny_v2 is c -> c
    assert data["guidelines"]["network"]["operators"] == data["operators"]
    versus = data["vs_reference"]
    assert versus["reference"] == "shufflenet_v2_x1_0" and versus["genotype"].startswith("stem24s1-")
    assert versus["genotype"].endswith("in32-cls10") and data["measured"] is None
    assert [v["guideline"] for v in versus["verdicts"]] == ["G1", "G2", "G3", "G4"]


def test_describe_prints_the_guidelines_table_and_a_line_per_guideline_vs_v2_1x() -> None:
    result = runner.invoke(app, ["describe", "shufflenet_v1_g8_x1_0"])
    assert result.exit_code == 0, result.output
    assert "ShuffleNet V2 guidelines, counted" in result.output and "vs shufflenet_v2_x1_0 at 224x224:" in result.output
    assert (
        "G2 group convs: 18.8% of MAC in grouped 1x1 convs (groups 1/8) vs 0.0% (groups 1): worse than V2 1.0x "
        "(+18.8 pts)" in result.output
    )
    assert (
        "G3 fragmentation: 3.2 fragments per unit" in result.output and "better than V2 1.0x (-5.6%)" in result.output
    )
    itself = runner.invoke(app, ["describe", "shufflenet_v2_x1_0"])
    assert "ARCH is shufflenet_v2_x1_0: nothing to compare it with" in itself.output


def test_describe_profile_measures_the_element_wise_share_of_both(tiny_v2) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["describe", str(tiny_v2), "--profile", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    arch, reference = data["measured"]["arch"], data["measured"]["reference"]
    assert 0 < arch["elementwise"] < 1 and 0 < reference["elementwise"] < 1
    assert arch["provenance"]["arch_id"] == tiny_v2.arch_id and arch["provenance"]["threads"] == 1
    assert data["vs_reference"]["verdicts"][-1]["title"] == "element-wise, measured"
    too_many = runner.invoke(app, ["describe", str(tiny_v2), "--profile", "--threads", "999"])
    assert too_many.exit_code == 2 and "--threads 999: this machine has" in too_many.output
    unused = runner.invoke(app, ["describe", str(tiny_v2), "--threads", "2"])
    assert unused.exit_code == 2 and "--threads 2 sets the threads of the --profile run; add --profile" in unused.output


def test_describe_imports_no_torch_unless_it_profiles() -> None:
    program = (
        "import sys; from shufflenet_nas.cli.app import app\n"
        "try:\n    app(['describe', 'shufflenet_v1_g3_x1_0'], prog_name='shufflenet-nas')\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        "print('torch' in sys.modules, file=sys.stderr)"
    )
    runs = [subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)]
    runs.append(subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True))
    assert runs[-1].stderr.strip().splitlines()[-1] == "False"  # the first run may check the replay against fvcore
