"""Commands that time networks on a device: measure, lut build, lut eval.

The measurement options are defined once here (``TargetOption`` ... ``IsolateOption``) with
``measure_config`` turning them into a ``MeasureConfig``, so other commands (search) take the same options.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shufflenet_nas.cli.catalog import space_from_options
from shufflenet_nas.cli.common import ArchArgument, JsonOption, arch_from_argument, err, out, print_json
from shufflenet_nas.errors import UsageError
from shufflenet_nas.nas.latency import MeasureConfig, check_target, default_cache_dir, measure_latency
from shufflenet_nas.nas.lut import Evaluation, LatencyTable, compare

TargetOption = Annotated[
    str, typer.Option("--target", help="cpu (PyTorch eager), gpu (CUDA) or onnxruntime (its CPU provider).")
]
BatchOption = Annotated[int, typer.Option("--batch", help="Batch size.")]
DtypeOption = Annotated[str, typer.Option("--dtype", help="fp32; bf16 on cpu and gpu; fp16 on gpu.")]
ThreadsOption = Annotated[
    int | None,
    typer.Option("--threads", help="CPU threads, set explicitly (default 1: the V2 paper's ARM protocol, steadiest)."),
]
RuntimeOption = Annotated[
    str | None,
    typer.Option(
        "--runtime",
        help="gpu: cudagraph (graph replay, stable; the default) or eager (launch-bound at small batches). "
        "cpu: eager. onnxruntime: onnxruntime.",
    ),
]
ResolutionOption = Annotated[int | None, typer.Option("--resolution", help="Override the input resolution.")]
IsolateOption = Annotated[
    bool,
    typer.Option("--isolate", help="Measure in a child process, so a CUDA OOM or error cannot poison what follows."),
]
NormalizeOption = Annotated[
    bool | None,
    typer.Option(
        "--normalize/--raw",
        help="Scale runs to the speed anchor of a reference network timed between them, so a shared host's "
        "speed swings cancel (default on cpu and onnxruntime), or report raw times (default on gpu).",
        show_default=False,
    ),
]
MaxTimeOption = Annotated[float, typer.Option("--max-time", help="Time cap per measurement, in seconds.")]
PrecisionOption = Annotated[
    float,
    typer.Option("--precision", help="Stop once the median's 95% confidence half-width is within this fraction."),
]
CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Where latency tables live (default: $SHUFFLENET_NAS_CACHE_DIR, else ~/.cache/shufflenet-nas/lut).",
    ),
]


def measure_config(
    target: str,
    batch: int = 1,
    dtype: str = "fp32",
    threads: int | None = None,
    runtime: str | None = None,
    isolate: bool = False,
    max_time_s: float = 10.0,
    rel_precision: float = 0.005,
    normalize: bool | None = None,
) -> MeasureConfig:
    """The options as a checked ``MeasureConfig``: bad values exit 2, a missing device exits 1."""
    config = MeasureConfig(
        target=target.lower(),
        batch=batch,
        dtype=dtype.lower(),
        threads=threads,
        runtime=runtime.lower() if runtime else None,
        max_time_s=max_time_s,
        rel_precision=rel_precision,
        normalize=normalize,
        isolate=isolate,
    )
    check_target(config)
    return config


def measure(
    arch: ArchArgument,
    target: TargetOption = "cpu",
    batch: BatchOption = 1,
    dtype: DtypeOption = "fp32",
    threads: ThreadsOption = None,
    runtime: RuntimeOption = None,
    resolution: ResolutionOption = None,
    isolate: IsolateOption = False,
    max_time: MaxTimeOption = 10.0,
    precision: PrecisionOption = 0.005,
    normalize: NormalizeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Measured latency of ARCH on a device: median, p10 / p90, robust CV, runs, and where it was measured."""
    genotype = arch_from_argument(arch, resolution)
    config = measure_config(target, batch, dtype, threads, runtime, isolate, max_time, precision, normalize)
    with err.status(f"measuring {genotype.arch_id} on {config.target} ({config.resolved_runtime})"):
        result = measure_latency(genotype, config)
    data = {"genotype": genotype.to_string(), **result.to_dict()}
    if json_output:
        print_json(data)
        return
    out.print(
        f"[bold]{genotype.arch_id}[/bold]  median [bold]{result.median_ms:.3f} ms[/bold]   "
        f"p10 {result.p10_ms:.3f}   p90 {result.p90_ms:.3f}   cv {result.cv:.1%}   {result.runs} runs "
        f"(median ±{data['ci_rel']:.1%} at 95%, stopped by {data['stopped_by']})",
        highlight=False,
    )
    out.print(_provenance_line(data), highlight=False)
    if data["normalized"]:
        out.print(
            f"normalised to the speed anchor of {data['reference']} ({data['reference_anchor_ms']:.3f} ms; "
            f"{data['reference_median_ms']:.3f} ms during this run); raw median {data['raw_median_ms']:.3f} ms",
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

BudgetOption = Annotated[
    str, typer.Option("--budget", help="FLOPs budget the sampled width ranges are sized for, e.g. 146MFLOPs.")
]
SpaceResolutionOption = Annotated[int, typer.Option("--resolution", help="Input resolution of the sampled networks.")]
SamplesOption = Annotated[int, typer.Option("--samples", help="Random architectures to sample from the space.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the random sampler.")]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


@lut_app.command("build")
def lut_build(
    target: TargetOption = "cpu",
    batch: BatchOption = 1,
    dtype: DtypeOption = "fp32",
    threads: ThreadsOption = None,
    runtime: RuntimeOption = None,
    budget: BudgetOption = "146MFLOPs",
    resolution: SpaceResolutionOption = 224,
    samples: SamplesOption = 100,
    calibration: Annotated[
        int, typer.Option("--calibration", help="Sampled networks also measured whole, to calibrate.")
    ] = 6,
    seed: SeedOption = 0,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Drop the stored table and measure afresh.")] = False,
    cache_dir: CacheDirOption = None,
    max_time: MaxTimeOption = 1.0,
    precision: PrecisionOption = 0.01,
    normalize: NormalizeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Measure the parts of SAMPLES random architectures of the search space, then calibrate on a few of them.

    Parts a later search visits that are not in the table are measured on first use and stored.
    """
    if not 1 <= calibration <= samples:
        raise UsageError(f"--calibration {calibration}: need between 1 and --samples ({samples})")
    config = measure_config(target, batch, dtype, threads, runtime, False, max_time, precision, normalize)
    space = space_from_options(budget, resolution)
    table = LatencyTable.open(config, cache_dir or default_cache_dir())
    if rebuild:
        table.clear()
    before, started = len(table), time.perf_counter()
    genotypes = space.sample_architectures(samples, seed)
    with _progress() as progress:
        for genotype in progress.track(genotypes, description="measuring parts"):
            table.parts_ms(genotype)
        task = progress.add_task("calibrating", total=1)
        fit = table.calibrate(genotypes[:calibration])
        progress.advance(task)
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
def lut_eval(
    target: TargetOption = "cpu",
    batch: BatchOption = 1,
    dtype: DtypeOption = "fp32",
    threads: ThreadsOption = None,
    runtime: RuntimeOption = None,
    budget: BudgetOption = "146MFLOPs",
    resolution: SpaceResolutionOption = 224,
    samples: SamplesOption = 30,
    seed: SeedOption = 1,
    cache_dir: CacheDirOption = None,
    max_time: MaxTimeOption = 1.0,
    precision: PrecisionOption = 0.01,
    normalize: NormalizeOption = None,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Estimate missing parts from measured ones (as a search does).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Predicted vs measured latency of SAMPLES random architectures: share within ±10% / ±5%, MAPE.

    Missing parts (and a missing calibration) are measured first, or with --estimate estimated from measured
    parts of the same structure; calibration networks are left out.
    """
    config = measure_config(target, batch, dtype, threads, runtime, False, max_time, precision, normalize)
    space = space_from_options(budget, resolution)
    table = LatencyTable.open(config, cache_dir or default_cache_dir())
    calibrated = {network for network, _, _ in table.calibration(resolution).networks}
    genotypes = [g for g in space.sample_architectures(samples + len(calibrated), seed) if str(g) not in calibrated]
    comparisons = []
    with _progress() as progress:
        for genotype in progress.track(genotypes[:samples], description="predict vs measure"):
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
