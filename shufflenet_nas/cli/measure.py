"""Commands that time networks on a device: measure, lut build, lut eval.

Their measurement options (``--target`` ... ``--isolate``) are ``common.measure_options``, shared with search.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from shufflenet_nas.cli.common import (
    ArchArgument,
    Command,
    JsonOption,
    MeasureOptions,
    SpaceBudgetOption,
    arch_from_argument,
    measure_options,
    option_group,
    space_from_options,
)
from shufflenet_nas.cli.console import err, out, print_json
from shufflenet_nas.cli.errors import UsageError
from shufflenet_nas.cli.progress import progress

if TYPE_CHECKING:
    from shufflenet_nas.nas.latency import MeasureConfig
    from shufflenet_nas.nas.lut import LatencyTable
    from shufflenet_nas.search_spaces import SearchSpace


@measure_options(max_time=10.0, precision=0.005)
def measure(
    arch: ArchArgument,
    measure: MeasureOptions,
    resolution: Annotated[int | None, typer.Option("--resolution", help="Override the input resolution.")] = None,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="A state dict (torch.save) to load by key, e.g. a torchvision checkpoint."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Measured latency of ARCH on a device, in milliseconds: median with its 95% interval, p10 / p90, robust CV,
    runs, and where it was measured; on cpu and onnxruntime also the median normalised to the speed anchor."""
    from shufflenet_nas.nas.latency import measure_latency

    genotype = arch_from_argument(arch, resolution)
    config = measure.config()
    with err.status(f"measuring {genotype.arch_id} on {config.target} ({config.resolved_runtime})"):
        result = measure_latency(genotype, config, weights)
    data = {"genotype": genotype.to_string(), **result.to_dict()} | ({"weights": str(weights)} if weights else {})
    if json_output:
        print_json(data)
        return
    half = result.median_ms * data["ci_rel"]
    out.print(
        f"[bold]{genotype.arch_id}[/bold]  median [bold]{result.median_ms:.3f} ms[/bold] "
        f"[{result.median_ms - half:.3f}, {result.median_ms + half:.3f}] at 95%   "
        f"p10 {result.p10_ms:.3f}   p90 {result.p90_ms:.3f}   cv {result.cv:.1%}   {result.runs} runs "
        f"(stopped by {data['stopped_by']})",
        highlight=False,
    )
    out.print(_provenance_line(data), highlight=False)
    if result.normalized_ms is not None:
        out.print(
            f"normalised: {result.normalized_ms:.3f} ms (±{data['normalized_ci_rel']:.1%}) at the speed anchor of "
            f"{data['reference']} ({data['reference_anchor_ms']:.3f} ms; {data['reference_median_ms']:.3f} ms "
            "during this run): the figure searches and lookup tables compare across runs",
            highlight=False,
        )


def _provenance_line(data: dict[str, Any]) -> str:
    versions = [f"torch {data['torch']}"] + [
        f"{name} {data[name]}" for name in ("cuda", "onnxruntime") if data.get(name)
    ]
    memory = ", channels-last" if data["channels_last"] else ""
    return (
        f"{data['target']} / {data['runtime']} on {data['device']}, {', '.join(versions)}, "
        f"{data['threads']} thread{'s' if data['threads'] > 1 else ''}, batch {data['batch']}, "
        f"{data['dtype']}{memory}, {data['resolution']}x{data['resolution']}"
    )


# ---- lut ------------------------------------------------------------------------------------------------
lut_app = typer.Typer(
    help="Latency lookup table: each distinct stem / unit / head measured once per device, networks predicted "
    "from their parts (linear calibration on whole networks).",
    no_args_is_help=True,
)


@dataclass(frozen=True)
class SampleOptions:
    """Where a latency table lives (``--cache-dir``), and the random architectures of the search space
    (``--budget``, ``--resolution``) it is built or checked on (``--samples``, ``--seed``)."""

    budget: str = "146MFLOPs"
    resolution: int = 224
    samples: int = 100
    seed: int = 0
    cache_dir: Path | None = None

    def open(self, measure: MeasureOptions) -> tuple[MeasureConfig, SearchSpace, LatencyTable]:
        """The measurement config, the search space and the latency table of these options."""
        from shufflenet_nas.jsonfile import default_cache_dir
        from shufflenet_nas.nas.lut import LatencyTable

        if self.samples < 1:
            raise UsageError(f"--samples {self.samples}: need at least 1 architecture")
        config = measure.config()
        space = space_from_options(self.budget, self.resolution)
        return config, space, LatencyTable.open(config, self.cache_dir or default_cache_dir())


def sample_options(*, samples: int, seed: int) -> Callable[[Command], Command]:
    """Give a lut command the ``SampleOptions`` (with these defaults) in its parameter ``sampled``."""
    options = {
        "budget": SpaceBudgetOption,
        "resolution": Annotated[int, typer.Option(help="Input resolution of the sampled networks.")],
        "samples": Annotated[int, typer.Option(help="Random architectures to sample from the space.")],
        "seed": Annotated[int, typer.Option(help="Seed of the random sampler.")],
        "cache_dir": Annotated[
            Path | None,
            typer.Option(
                help="Where latency tables live (default: $SHUFFLENET_NAS_CACHE_DIR, else ~/.cache/shufflenet-nas/lut)."
            ),
        ],
    }
    return option_group("sampled", SampleOptions, options, samples=samples, seed=seed)


@lut_app.command("build")
@measure_options(max_time=1.0, precision=0.01, isolate=False)
@sample_options(samples=100, seed=0)
def lut_build(
    calibration: Annotated[int, typer.Option(help="Sampled networks also measured whole, to calibrate.")] = 6,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Drop the stored table and measure afresh.")] = False,
    json_output: JsonOption = False,
    *,
    measure: MeasureOptions,
    sampled: SampleOptions,
) -> None:
    """Measure the parts of SAMPLES random architectures of the search space, then calibrate on a few of them.

    Parts a later search visits that are not in the table are measured on first use and stored.
    """
    samples, resolution = sampled.samples, sampled.resolution
    if not 1 <= calibration <= samples:
        raise UsageError(f"--calibration {calibration}: need between 1 and --samples ({samples})")
    _, space, table = sampled.open(measure)
    if rebuild:
        table.clear()
    before, started = len(table), time.perf_counter()
    genotypes = space.sample_architectures(samples, sampled.seed)
    with progress("measuring parts") as bar:
        for genotype in bar.track(genotypes, "measuring parts"):
            table.parts_ms(genotype)
        bar.update(0, total=1, description="calibrating")
        fit = table.calibrate(genotypes[:calibration])
        bar.update(advance=1)
    data = {
        "table": str(table.path),
        "parts": len(table),
        "new_parts": len(table) - before,
        "networks": len(genotypes),
        "resolution": resolution,
        "calibration": {"slope": fit.slope, "intercept_ms": fit.intercept, "networks": len(fit.networks)},
        "seconds": round(time.perf_counter() - started, 1),
        "key": table.key,
    }
    if json_output:
        print_json(data)
        return
    out.print(
        f"{data['parts']} parts ({data['new_parts']} new) from {len(genotypes)} networks in {data['seconds']} s; "
        f"calibration at {resolution}px: predicted = {fit.intercept:.3f} ms + {fit.slope:.3f} x sum of parts "
        f"({len(fit.networks)} networks)",
        highlight=False,
    )
    out.print(f"table: {table.path}", highlight=False)


@lut_app.command("eval")
@measure_options(max_time=1.0, precision=0.01, isolate=False)
@sample_options(samples=30, seed=1)
def lut_eval(
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Estimate missing parts from measured ones (as a search does).")
    ] = False,
    json_output: JsonOption = False,
    *,
    measure: MeasureOptions,
    sampled: SampleOptions,
) -> None:
    """Predicted vs measured latency of SAMPLES random architectures: share within ±10% / ±5%, MAPE.

    Missing parts (and a missing calibration) are measured first, or with --estimate estimated from measured
    parts of the same structure; calibration networks are left out.
    """
    from shufflenet_nas.nas.lut import Evaluation, compare

    config, space, table = sampled.open(measure)
    calibrated = {network for network, _, _ in table.calibration(sampled.resolution).networks}
    drawn = space.sample_architectures(sampled.samples + len(calibrated), sampled.seed)
    genotypes = [g for g in drawn if str(g) not in calibrated][: sampled.samples]
    comparisons = []
    with progress("predict vs measure") as bar:
        for genotype in bar.track(genotypes, "predict vs measure"):
            comparisons.append(compare(table, genotype, estimate))
    summary = Evaluation.of(comparisons)
    rows = [
        {
            "arch_id": c.genotype.arch_id,
            "family": c.genotype.family,
            "predicted_ms": c.predicted_ms,
            "measured_ms": c.measured_ms,
            "error_pct": c.error * 100,
            "genotype": str(c.genotype),
        }
        for c in comparisons
    ]
    estimated = sum(c.estimated_parts for c in comparisons)
    if json_output:
        data = {"summary": summary.__dict__, "estimated_parts": estimated, "networks": rows}
        print_json(data | {"table": str(table.path), "key": table.key})
        return
    listing = Table(title=f"Latency table vs measurement, {config.target} / {config.resolved_runtime}")
    for column in ("arch", "family", "predicted ms", "measured ms", "error"):
        listing.add_column(column, justify="left" if column in ("arch", "family") else "right")
    for row in rows:
        error = f"{row['error_pct']:+.1f}%"
        listing.add_row(
            row["arch_id"],
            row["family"],
            f"{row['predicted_ms']:.3f}",
            f"{row['measured_ms']:.3f}",
            error if abs(row["error_pct"]) <= 10 else f"[red]{error}[/red]",
        )
    out.print(listing)
    out.print(
        f"within ±10%: {summary.within_10:.0%}   within ±5%: {summary.within_5:.0%}   MAPE {summary.mape:.2f}%   "
        f"predict {summary.predict_ms:.3f} ms vs measure {summary.measure_s:.2f} s per network"
        + (f"   {estimated} parts estimated" if estimate else ""),
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(measure)
    app.add_typer(lut_app, name="lut")
