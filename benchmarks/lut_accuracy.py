"""Latency-table accuracy: predicted vs measured latency of random architectures, and predict vs measure time.

    python benchmarks/lut_accuracy.py [--target cpu] [--samples 30] [--resolution 224] [--budget 146MFLOPs]

Starts from an empty table (a temporary directory unless --cache-dir is given), calibrates it on a few random
networks (seed 0), then predicts and measures SAMPLES other random networks (seed 1), filling missing parts
on the way. Each network joins the calibration once measured (``LatencyTable.observe``), after its own
prediction was made: every prediction is out of sample. Target on cpu: >= 95% of 30 networks within +-10% of
measured, a cached prediction under 1 ms.
With --estimate N it then predicts N further networks the way a search does, estimating the parts the table
lacks from measured parts of the same structure, and measures them whole.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from shufflenet_nas import LatencyTable, MeasureConfig
from shufflenet_nas.nas.lut import CALIBRATION_NETWORKS, Evaluation, compare
from shufflenet_nas.search_spaces import SearchSpace
from shufflenet_nas.units import parse_flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--runtime", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--calibration", type=int, default=CALIBRATION_NETWORKS)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--budget", default="146MFLOPs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-time", type=float, default=2.0, help="time cap per measurement, seconds")
    parser.add_argument("--precision", type=float, default=0.005, help="target CI half-width of each median")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument(
        "--estimate",
        type=int,
        default=0,
        metavar="N",
        help="then predict N more random architectures estimating their missing parts, as a search does",
    )
    args = parser.parse_args()

    config = MeasureConfig(
        args.target, threads=args.threads, runtime=args.runtime, max_time_s=args.max_time, rel_precision=args.precision
    )
    space = SearchSpace(budget_mflops=parse_flops(args.budget) / 1e6, resolution=args.resolution)
    with tempfile.TemporaryDirectory() as scratch:
        table = LatencyTable.open(config, args.cache_dir or Path(scratch))
        begin = time.perf_counter()
        calibration_set = space.sample_architectures(args.calibration, seed=0)
        fit = table.calibrate(calibration_set)
        print(
            f"calibrated on {len(calibration_set)} networks in {time.perf_counter() - begin:.0f} s: "
            f"predicted = {fit.intercept:.3f} ms + {fit.slope:.4f} x sum of parts ({len(table)} parts)",
            flush=True,
        )
        seen = {g.arch_id for g in calibration_set}
        candidates = space.sample_architectures(args.samples + len(seen), seed=args.seed)
        genotypes = [g for g in candidates if g.arch_id not in seen][: args.samples]
        comparisons = []
        for index, genotype in enumerate(genotypes, start=1):
            before = len(table)
            result = compare(table, genotype)
            comparisons.append(result)
            print(
                f"{index:3d} {genotype.arch_id} {genotype.family:9s} predicted {result.predicted_ms:8.3f} ms  "
                f"measured {result.measured_ms:8.3f} ms  error {result.error:+7.2%}  "
                f"({len(table) - before} new parts)",
                flush=True,
            )
        summary = Evaluation.of(comparisons)
        predict_us = np.array([c.predict_s for c in comparisons]) * 1e6
        estimated = None
        if args.estimate:
            print(f"\nestimating missing parts from the {len(table)} measured ones:", flush=True)
            seen |= {g.arch_id for g in genotypes}
            others = space.sample_architectures(args.estimate + len(seen), seed=args.seed + 1)
            others = [g for g in others if g.arch_id not in seen][: args.estimate]
            estimates = []
            for index, genotype in enumerate(others, start=1):
                estimates.append(compare(table, genotype, estimate=True))
                print(
                    f"{index:3d} {genotype.arch_id} {genotype.family:9s} predicted {estimates[-1].predicted_ms:8.3f} "
                    f"ms  measured {estimates[-1].measured_ms:8.3f} ms  error {estimates[-1].error:+7.2%}  "
                    f"({estimates[-1].estimated_parts} parts estimated)",
                    flush=True,
                )
            estimated = Evaluation.of(estimates)
    print(
        f"\n{config.target} / {config.resolved_runtime}, {config.resolved_threads} threads, batch 1, fp32, "
        f"{args.resolution}px, {len(table)} parts in the table"
    )
    print(
        f"{summary.networks} networks: within ±10% {summary.within_10:.0%}, within ±5% {summary.within_5:.0%}, "
        f"MAPE {summary.mape:.2f}%"
    )
    print(
        f"predict (all parts cached): mean {predict_us.mean():.0f} us, max {predict_us.max():.0f} us; "
        f"measure: mean {summary.measure_s:.2f} s per network ({summary.measure_s * 1e3 / summary.predict_ms:,.0f}x)"
    )
    if estimated is not None:
        print(
            f"{estimated.networks} networks with estimated parts: within ±10% {estimated.within_10:.0%}, "
            f"within ±5% {estimated.within_5:.0%}, MAPE {estimated.mape:.2f}%; predict {estimated.predict_ms:.2f} ms "
            "(mean, incl. measuring the parts too few others let it estimate)"
        )


if __name__ == "__main__":
    main()
