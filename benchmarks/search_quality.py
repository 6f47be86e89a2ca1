"""Search quality over many seeds, cheaply: lookup-table searches (no timing noise, ~1 min per 300 trials).

For each sampler, objective and seed: a 300-trial lookup-table search at 224 px under 146 MFLOPs with the
default proxy and --proxy-floor shufflenet_v2_x1_0, then how much lower the predicted latency of its fastest
architecture at V2 1.0x's proxy or better is than V2 1.0x's predicted latency (the same predictor for both:
a comparison of search settings, not a measured speed-up; `search.py` measures). Prints each run and the mean.

Usage: python benchmarks/search_quality.py [--seeds 0,1,2,3] [--objectives pareto,latency] [--samplers tpe]
       [--trials 300] [--cache-dir DIR] [--table-architectures 100] [--stem-range 8,32]
Without --cache-dir the lookup table is built first in a temporary directory (~6 min on 2 cores).
--stem-range searches another range of stem widths than the default (``SpaceRanges.stem_range``; parts the
table lacks are estimated; `search.py` measures).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import optuna

from shufflenet_nas import LatencyTable, MeasureConfig, SearchConfig, SpaceRanges, run_search, summarise
from shufflenet_nas.search_spaces import SearchSpace


def best_against_v2(study: optuna.Study) -> tuple[float, str] | None:
    """The fastest architecture at V2 1.0x's proxy or better: 1 - its latency / V2 1.0x's (the study's own
    latencies) and its genotype; None if nothing qualifies."""
    summary = summarise(study)
    reference = next(r for r in summary.baselines if r.baseline == "shufflenet_v2_x1_0")
    rows = [r for r in summary.trials if r.proxy >= reference.proxy and not r.baseline]
    if not rows:
        return None
    best = min(rows, key=lambda r: r.latency_ms)
    return 1 - best.latency_ms / reference.latency_ms, best.genotype


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--objectives", default="pareto,latency")
    parser.add_argument("--samplers", default="tpe")
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--cache-dir", type=Path, help="a lookup-table directory to use (else one is built)")
    parser.add_argument("--table-architectures", type=int, default=100)
    parser.add_argument("--stem-range", help="LOW,HIGH stem widths to search instead of the default")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="snas-quality-"))
    os.environ["SHUFFLENET_NAS_CACHE_DIR"] = str(args.cache_dir or work / "lut")
    measure = MeasureConfig(target="cpu", max_time_s=0.5, rel_precision=0.01)  # the search's defaults
    table = LatencyTable.open(measure)
    for genotype in SearchSpace(budget_mflops=146).sample_architectures(args.table_architectures, seed=0):
        table.predict_ms(genotype)  # measures what the table lacks (nothing, for a table built the same way)
    ranges = SpaceRanges()
    if args.stem_range:
        low, high = map(int, args.stem_range.split(","))
        ranges = SpaceRanges(stem_range=(low, high))
    print(
        f"lookup table: {len(table)} parts; {args.trials} trials a search, 224 px, 146 MFLOPs, naswot, floor V2 1.0x, "
        f"stem widths {ranges.stem_range[0]}..{ranges.stem_range[1]}"
    )
    for sampler in args.samplers.split(","):
        for objective in args.objectives.split(","):
            savings = []
            for seed in map(int, args.seeds.split(",")):
                config = SearchConfig(
                    study_name=f"{sampler}-{objective}-{seed}",
                    budget_flops=146e6,
                    measure=measure,
                    seed=seed,
                    sampler=sampler,
                    objective=objective,
                    latency_mode="lut",
                    proxy_floor="shufflenet_v2_x1_0",
                    ranges=ranges,
                    results_dir=work,
                )
                best = best_against_v2(run_search(config, n_trials=args.trials, timeout=None))
                savings.append(best[0] if best else 0.0)
                shown = f"{best[0] * 100:.1f}% lower ({best[1]})" if best else "nothing reached V2's proxy"
                print(f"  {sampler} --objective {objective} seed {seed}: {shown}", flush=True)
            print(f"{sampler} --objective {objective}: mean {statistics.mean(savings) * 100:.1f}% lower (predicted)")


if __name__ == "__main__":
    main()
