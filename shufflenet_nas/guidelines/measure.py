"""Measuring the guideline tables on a device: each table's rows at one width timed together, interleaved."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.guidelines.configs import (
    BLOCKS,
    GUIDELINES,
    QUICK_WIDTHS,
    RESOLUTION,
    ROUNDS,
    RUNS,
    WIDTHS,
    Guideline,
    paper_setup,
)
from shufflenet_nas.guidelines.cost import stack_cost
from shufflenet_nas.guidelines.result import GuidelineResult, GuidelinesResult, RowResult, TableResult

if TYPE_CHECKING:
    from shufflenet_nas.nas.latency import MeasureConfig

Progress = Callable[[int, int, str], None]  # (tables done, tables in all, the table just measured)


MAX_RESOLUTION = 224  # 4x the paper's 56 px: the widest stack (1728 channels) holds 0.35 GB of activation per image


def run_guidelines(
    config: MeasureConfig,
    *,
    quick: bool = False,
    widths: tuple[int, ...] | None = None,
    rounds: int = ROUNDS,
    runs: int = RUNS,
    resolution: int = RESOLUTION,
    on_progress: Progress | None = None,
) -> GuidelinesResult:
    """Measure the V2 paper's guideline tables (G1-G4) on ``config``'s device and decide each guideline.

    Each table at each width is one interleaved run (``nas.latency``'s ``time_interleaved``: ``rounds`` rounds,
    each timing every row ``runs`` times after a short warm-up, order rotating), raw milliseconds at
    ``config.batch``; ``config.normalize``, ``max_time_s``, ``rel_precision`` and ``isolate`` do not apply. The
    rows are built on the paper's width set for ``config.target`` (``configs.paper_setup``). ``widths``: the
    paper's x1, x2, x4 by default, x1 alone when ``quick``. ``resolution`` is the feature maps' size (the
    paper: 56).
    """
    from shufflenet_nas.nas.latency import check_target

    setup = paper_setup(config.target)
    widths = widths if widths is not None else (QUICK_WIDTHS if quick else WIDTHS)
    if not widths or len(set(widths)) != len(widths) or not set(widths) <= set(WIDTHS):
        raise InvalidArgumentError(
            f"widths={widths!r}: use some of {', '.join(map(str, WIDTHS))} (the paper's x1/x2/x4)"
        )
    if not 1 <= resolution <= MAX_RESOLUTION:
        raise InvalidArgumentError(
            f"resolution={resolution}: use 1 to {MAX_RESOLUTION} pixels (the paper's feature maps are {RESOLUTION})"
        )
    check_target(config)
    started = time.perf_counter()
    total = len(GUIDELINES) * len(widths)
    results, provenance = [], {}
    for guideline in GUIDELINES:
        tables = []
        for width in widths:
            table, provenance = _measure_table(guideline, setup.width_set, width, config, rounds, runs, resolution)
            tables.append(table)
            if on_progress is not None:
                on_progress(len(results) * len(widths) + len(tables), total, f"{guideline.key} x{width}")
        results.append(
            GuidelineResult(
                guideline.key,
                guideline.claim,
                guideline.source,
                guideline.block,
                guideline.faster,
                guideline.slower,
                tuple(tables),
            )
        )
    return GuidelinesResult(
        target=config.target,
        width_set=setup.width_set,
        paper_device=setup.device,
        paper_batch=setup.batch,
        paper_unit=setup.unit,
        batch=config.batch,
        resolution=resolution,
        blocks=BLOCKS,
        widths=tuple(widths),
        rounds=rounds,
        runs=runs,
        seconds=round(time.perf_counter() - started, 1),
        guidelines=tuple(results),
        provenance=provenance | {"resolution": resolution},
    )


def _measure_table(
    guideline: Guideline, width_set: str, width: int, config: MeasureConfig, rounds: int, runs: int, resolution: int
) -> tuple[TableResult, dict[str, object]]:
    """One table at one width: its rows timed interleaved; the table and the run's provenance."""
    from shufflenet_nas.guidelines.blocks import build_stack
    from shufflenet_nas.nas.latency import seeded
    from shufflenet_nas.nas.latency._interleaved import time_interleaved

    specs = [row.block(width_set, width) for row in guideline.rows]
    modules = [
        (seeded(lambda spec=spec: build_stack(spec)), (spec.channels, resolution, resolution), None) for spec in specs
    ]
    timed = time_interleaved(modules, config, rounds=rounds, runs=runs)
    rows = []
    for index, (row, spec) in enumerate(zip(guideline.rows, specs, strict=True)):
        cost = stack_cost(spec, resolution)
        ratio = timed.ratio(index, 0) if index else (1.0, 1.0, 1.0)  # the first row over itself
        measured = (timed.median_ms(index), *timed.ms_interval(index), *ratio)
        paper = row.paper[width_set][WIDTHS.index(width)]
        rows.append(RowResult(row.label, spec.describe(), cost.flops, cost.mac, cost.operators, *measured, paper))
    ratio, low, high = timed.ratio(guideline.index(guideline.faster), guideline.index(guideline.slower))
    return TableResult(width, tuple(rows), ratio, low, high), dict(timed.provenance)
