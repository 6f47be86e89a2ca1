"""Commands that describe architectures: baselines, describe, space."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from shufflenet_nas.cli.common import (
    ArchArgument,
    JsonOption,
    SpaceBudgetOption,
    arch_from_argument,
    space_from_options,
)
from shufflenet_nas.cli.console import err, out, print_json
from shufflenet_nas.cli.errors import UsageError

if TYPE_CHECKING:
    from shufflenet_nas.nas.explain import MeasuredShare
    from shufflenet_nas.search_spaces import Genotype


def baselines(json_output: JsonOption = False) -> None:
    """The papers' ShuffleNet V1/V2 models: paper vs counted MFLOPs, params, top-1 error, source."""
    from shufflenet_nas.nas.cost import count_cost
    from shufflenet_nas.search_spaces import BASELINES

    rows = []
    for baseline in BASELINES.values():
        cost = count_cost(baseline.genotype)
        paper = baseline.paper_mflops
        rows.append(
            {
                "name": baseline.name,
                "paper_mflops": paper,
                "counted_mflops": round(cost.mflops, 2),
                "mflops_diff_pct": round((cost.mflops / paper - 1) * 100, 2) if paper else None,
                "params": cost.params,
                "paper_top1_error": baseline.paper_top1_error,
                "source": baseline.source,
                "arch_id": baseline.genotype.arch_id,
                "genotype": baseline.genotype.to_string(),
            }
        )
    if json_output:
        print_json(rows)
        return
    table = Table(title="ShuffleNet baselines (MFLOPs = conv + linear multiply-adds, fvcore, 224x224)")
    for column in ("name", "paper MFLOPs", "counted", "diff", "params", "top-1 err %", "source"):
        table.add_column(column, justify="left" if column in ("name", "source") else "right")
    for row in rows:
        diff = f"{row['mflops_diff_pct']:+.2f}%" if row["mflops_diff_pct"] is not None else "-"
        table.add_row(
            row["name"],
            f"{row['paper_mflops']:g}" if row["paper_mflops"] else "-",
            f"{row['counted_mflops']:.2f}",
            diff,
            f"{row['params']:,}",
            f"{row['paper_top1_error']:.1f}" if row["paper_top1_error"] else "-",
            row["source"],
        )
    out.print(table)


def describe(
    arch: ArchArgument,
    resolution: Annotated[int | None, typer.Option(help="Override the input resolution.")] = None,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Also measure G4 on this CPU: torch.profiler's share of operator time in element-wise operators "
            "(ARCH and ShuffleNet V2 1.0x; a few seconds).",
        ),
    ] = False,
    threads: Annotated[int | None, typer.Option(help="CPU threads of the --profile run (default 1).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Per-stage structure, MFLOPs, params, memory access cost and operator count of ARCH, and its figures for
    ShuffleNet V2's guidelines (G1 equal widths, G2 group convs, G3 fragmentation, G4 element-wise ops) beside
    ShuffleNet V2 1.0x at the same input."""
    from shufflenet_nas.nas.cost import cost_breakdown, count_cost
    from shufflenet_nas.nas.explain import (
        GUIDELINE_COLUMNS,
        GUIDELINE_LEGEND,
        REFERENCE,
        compare_measured,
        compare_to_reference,
        explain,
        reference_like,
    )
    from shufflenet_nas.search_spaces.plan import network_plan

    if threads is not None and not profile:
        raise UsageError(f"--threads {threads} sets the threads of the --profile run; add --profile")
    genotype = arch_from_argument(arch, resolution)
    explanation = explain(genotype)
    reference = reference_like(genotype)
    against = reference if reference is not None and reference != genotype else None  # V2 1.0x, unless ARCH is it
    verdicts = compare_to_reference(explanation, explain(against)) if against else ()
    measured = _profiled([genotype, *([against] if against else [])], threads or 1) if profile else []
    if len(measured) == 2:
        verdicts += (compare_measured(*measured),)
    total = count_cost(genotype)
    sections = cost_breakdown(genotype)
    plan = network_plan(genotype)
    stages = []
    first = 1
    for stage, (name, cost) in zip(genotype.stages, sections[1:-1], strict=True):
        first += stage.repeats
        size = plan[first].resolution  # the input size of the next part is this stage's output size
        stages.append({"name": name, **stage.__dict__, "output_size": size, **cost.to_dict()})
    data = {
        "arch_id": genotype.arch_id,
        "genotype": genotype.to_string(),
        "family": genotype.family,
        "resolution": genotype.resolution,
        **total.to_dict(),
        "stem": sections[0][1].to_dict(),
        "stages": stages,
        "head": sections[-1][1].to_dict(),
        "guidelines": explanation.to_dict(),
        "vs_reference": {
            "reference": REFERENCE,
            "genotype": against.to_string(),
            "verdicts": [verdict.to_dict() for verdict in verdicts],
        }
        if against
        else None,
        "measured": {
            "arch": measured[0].to_dict(),
            "reference": measured[1].to_dict() if len(measured) == 2 else None,
        }
        if measured
        else None,
    }
    if json_output:
        print_json(data)
        return
    out.print(f"[bold]{genotype.arch_id}[/bold]  {genotype.family}  {genotype.resolution}x{genotype.resolution}")
    out.print(genotype.to_string(), highlight=False)
    table = Table()
    for column in ("stage", "unit", "n", "out", "groups", "split", "kernel", "SE", "res", "size", "MFLOPs", "params"):
        table.add_column(column, justify="left" if column in ("stage", "unit") else "right")
    table.add_row(
        "stem",
        "conv3x3",
        "1",
        str(genotype.stem_channels),
        "",
        "",
        "3",
        "",
        "",
        "",
        f"{data['stem']['mflops']:.2f}",
        f"{data['stem']['params']:,}",
    )
    for row in stages:
        table.add_row(
            row["name"],
            row["unit"],
            str(row["repeats"]),
            str(row["out_channels"]),
            str(row["groups"]),
            f"{row['split_ratio']:g}" if row["unit"] == "v2" else "-",
            str(row["kernel"]),
            "yes" if row["se"] else "",
            "yes" if row["residual"] else "",
            f"{row['output_size']}",
            f"{row['mflops']:.2f}",
            f"{row['params']:,}",
        )
    head = genotype.head_channels or "-"
    table.add_row(
        "head",
        "conv1x1+fc",
        "1",
        str(head),
        "",
        "",
        "",
        "",
        "",
        "1",
        f"{data['head']['mflops']:.2f}",
        f"{data['head']['params']:,}",
    )
    out.print(table)
    out.print(
        f"MFLOPs {total.mflops:.2f}   params {total.params:,}   "
        f"memory access {total.memory_access / 1e6:.2f}M elements   operators {total.operators}   "
        f"peak activations {total.peak_activation_bytes / 2**20:.2f} MiB (fp32, batch 1)",
        highlight=False,
    )
    guidelines = Table(title="ShuffleNet V2 guidelines, counted (MAC = elements read + written)")
    for column in ("", *GUIDELINE_COLUMNS):
        guidelines.add_column(column, justify="left" if not column else "right")
    for figures in (*explanation.sections, explanation.network):
        guidelines.add_row(figures.name, *figures.cells())
    out.print(guidelines)
    out.print(GUIDELINE_LEGEND, style="dim", highlight=False)
    if against:
        out.print(f"vs {REFERENCE} at {genotype.resolution}x{genotype.resolution}:", highlight=False)
        for verdict in verdicts:
            out.print(f"  {verdict.text()}", highlight=False, soft_wrap=True)
    elif reference is None:
        size = f"{genotype.resolution} px input with a stride-{genotype.stem_stride} stem"
        out.print(f"{REFERENCE} does not fit a {size}: nothing to compare ARCH with", highlight=False)
    else:
        out.print(f"ARCH is {REFERENCE}: nothing to compare it with", highlight=False)
    for name, share in zip((genotype.arch_id, REFERENCE), measured, strict=False):
        p = share.provenance
        out.print(
            f"G4 measured, {name} on {p['device']} ({p['threads']} thread(s), {p['dtype']}, batch 1, "
            f"{share.runs} profiled forwards): {share.text()}",
            highlight=False,
            soft_wrap=True,
        )


def _profiled(genotypes: list[Genotype], threads: int) -> list[MeasuredShare]:
    """The measured element-wise share of each genotype on this CPU."""
    from shufflenet_nas.nas.explain import measured_elementwise_share
    from shufflenet_nas.nas.latency import MeasureConfig

    config = MeasureConfig(target="cpu", threads=threads)
    with err.status("profiling on the CPU ..."):
        return [measured_elementwise_share(genotype, config) for genotype in genotypes]


def space(
    budget: SpaceBudgetOption = "146MFLOPs",
    resolution: Annotated[int, typer.Option(help="Input resolution.")] = 224,
    space_shuffle: Annotated[
        bool, typer.Option("--space-shuffle", help="With the channel shuffle as a dimension (as search takes it).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """The searchable dimensions and their ranges."""
    search_space = space_from_options(budget, resolution)
    if space_shuffle:
        from shufflenet_nas.search_spaces import SpaceRanges

        search_space = replace(search_space, ranges=SpaceRanges(shuffle=(False, True)))
    dims = [d.__dict__ for d in search_space.dimensions()]
    if json_output:
        print_json({"budget_mflops": search_space.budget_mflops, "resolution": resolution, "dimensions": dims})
        return
    table = Table(
        title=f"Search space at {resolution}x{resolution}, widths sized for {search_space.budget_mflops:g} MFLOPs"
    )
    for column in ("parameter", "choices", "applies to", "note"):
        table.add_column(column)
    for d in dims:
        table.add_row(d["name"], d["choices"], d["applies_to"], d["note"])
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(baselines)
    app.command()(describe)
    app.command()(space)
