"""Commands that describe architectures: baselines, describe, space."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer
from rich.table import Table

from shufflenet_nas.cli.common import (
    ArchArgument,
    JsonOption,
    SpaceBudgetOption,
    arch_from_argument,
    space_from_options,
)
from shufflenet_nas.cli.console import out, print_json


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
    json_output: JsonOption = False,
) -> None:
    """Per-stage structure, MFLOPs, params, memory access cost and operator count of ARCH."""
    from shufflenet_nas.nas.cost import cost_breakdown, count_cost
    from shufflenet_nas.search_spaces.plan import network_plan

    genotype = arch_from_argument(arch, resolution)
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
