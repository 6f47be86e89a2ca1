"""Search throughput and quality on this machine's CPU at 224x224, --budget 146MFLOPs.

Prints:
1. trials per minute with measured latency and the default zero-cost proxy (the search's defaults), and the
   best architecture of that study at V2 1.0x's proxy or better beside ShuffleNet V2 1.0x, both measured in
   this run, interleaved, with the same precise settings: latency ratio and proxy scores; for the default
   Pareto objective and for --objective latency (the fastest architecture above the proxy floor);
2. the time to build a lookup table from 100 random architectures, then trials per minute of a search
   on it (parts it lacks are estimated from measured parts of the same structure or group, or measured when
   it has too few) with the default proxy, and with --proxy params (what the search itself costs, the proxy
   aside) under TPE and NSGA-II; then the same comparison for the lookup-table study, its front re-measured.

Usage: python benchmarks/search.py [--trials-measured 300] [--trials-lut 300] [--table-architectures 100]
(0 trials skips that part).
Everything goes to a temporary directory (studies and the lookup table).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from shufflenet_nas import (
    LatencyTable,
    MeasureConfig,
    SearchConfig,
    compute_proxies,
    count_cost,
    measure_latency,
    remeasure_front,
    run_search,
    summarise,
)
from shufflenet_nas.nas.proxies import DEFAULT_PROXY
from shufflenet_nas.search_spaces import BASELINES, Genotype, SearchSpace


def timed_search(config: SearchConfig, n_trials: int) -> tuple[optuna.Study, float]:
    start = time.perf_counter()
    study = run_search(config, n_trials=n_trials, timeout=None)
    return study, n_trials / (time.perf_counter() - start) * 60


def interleaved_medians(genotypes: list[Genotype], config: MeasureConfig, rounds: int) -> list[float]:
    """Median over rounds of each architecture's median, measured in turn (drift hits all alike)."""
    per_arch: list[list[float]] = [[] for _ in genotypes]
    for _ in range(rounds):
        for index, genotype in enumerate(genotypes):
            per_arch[index].append(measure_latency(genotype, config).comparable_ms)
    return [statistics.median(values) for values in per_arch]


def best_against_v2(study: optuna.Study, trials: int, seed: int) -> None:
    """The fastest Pareto architecture at V2 1.0x's proxy or better, measured interleaved with V2 1.0x."""
    summary = summarise(study)
    reference = next(r for r in summary.baselines if r.baseline == "shufflenet_v2_x1_0")
    rows = sorted(
        (r for r in summary.pareto if r.proxy >= reference.proxy and not r.baseline), key=lambda r: r.latency_ms
    )
    if not rows:
        print(f"  no architecture in {trials} trials reached V2 1.0x's proxy ({reference.proxy:.4g})")
        return
    candidates = [Genotype.from_string(r.genotype) for r in rows[:4]]  # the fastest few, as the study saw them
    v2 = BASELINES["shufflenet_v2_x1_0"].genotype
    precise = MeasureConfig(target="cpu", max_time_s=3.0, rel_precision=0.005)
    latencies = interleaved_medians([v2, *candidates], precise, rounds=5)
    v2_ms, best_ms, best = min(
        ((latencies[0], ms, g) for ms, g in zip(latencies[1:], candidates, strict=True)), key=lambda x: x[1]
    )
    proxy = compute_proxies(best, [DEFAULT_PROXY], seed=seed)[DEFAULT_PROXY].value
    v2_proxy = compute_proxies(v2, [DEFAULT_PROXY], seed=seed)[DEFAULT_PROXY].value
    print(f"  ShuffleNet V2 1.0x: {v2_ms:.2f} ms, {DEFAULT_PROXY} {v2_proxy:.4g}")
    print(
        f"  best found ({best.family}, {best.arch_id}, {count_cost(best).mflops:.1f} MFLOPs): {best_ms:.2f} ms, "
        f"{DEFAULT_PROXY} {proxy:.4g}"
    )
    print(f"    {best}")
    saved = (1 - best_ms / v2_ms) * 100
    print(
        f"  latency best / V2 1.0x: {best_ms / v2_ms:.3f} ({saved:.1f}% lower; goal >= 20% at an equal or better proxy)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials-measured", type=int, default=300)
    parser.add_argument("--trials-lut", type=int, default=300)
    parser.add_argument(
        "--table-architectures", type=int, default=100, help="random architectures the table is built from"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="snas-bench-"))
    os.environ["SHUFFLENET_NAS_CACHE_DIR"] = str(work / "lut")
    search_measure = MeasureConfig(target="cpu", max_time_s=0.5, rel_precision=0.01)  # the search's defaults
    common = {
        "budget_flops": 146e6,
        "measure": search_measure,
        "seed": args.seed,
        "results_dir": work,
        "proxy_floor": "shufflenet_v2_x1_0",  # the question asked: faster than V2 1.0x at its proxy or better
    }
    print(
        f"CPU, 224x224, batch 1, fp32, {search_measure.resolved_threads} thread, normalised latency, "
        f"proxy {DEFAULT_PROXY}, budget 146 MFLOPs, --proxy-floor shufflenet_v2_x1_0, TPE seed {args.seed}",
        flush=True,
    )

    if args.trials_measured:
        for objective in ("pareto", "latency"):
            config = SearchConfig(study_name=f"measured-{objective}", objective=objective, **common)
            study, measured_rate = timed_search(config, args.trials_measured)
            print(
                f"measured latency, --objective {objective}: {measured_rate:.1f} trials/min over "
                f"{args.trials_measured} trials (goal >= 60)"
            )
            best_against_v2(study, args.trials_measured, args.seed)
    if not args.trials_lut:
        return

    start = time.perf_counter()
    table = LatencyTable.open(search_measure)
    for genotype in SearchSpace(budget_mflops=146).sample_architectures(args.table_architectures, seed=args.seed):
        table.predict_ms(genotype)
    print(
        f"lookup table: {len(table)} parts from {args.table_architectures} random architectures in "
        f"{time.perf_counter() - start:.0f} s",
        flush=True,
    )
    study, lut_rate = timed_search(SearchConfig(study_name="lut", latency_mode="lut", **common), args.trials_lut)
    print(f"lookup table + {DEFAULT_PROXY}: {lut_rate:.1f} trials/min over {args.trials_lut} trials (goal >= 1000)")
    for sampler in ("tpe", "nsga2"):
        config = SearchConfig(
            study_name=f"lut-params-{sampler}", latency_mode="lut", proxy="params", sampler=sampler, **common
        )
        _, rate = timed_search(config, args.trials_lut)
        print(f"lookup table + params, {sampler}: {rate:.1f} trials/min over {args.trials_lut} trials (goal >= 1000)")
    print(f"lookup table: {len(LatencyTable.open(search_measure))} parts now (with those the searches measured)")
    remeasure_front(study, search_measure)
    print("lookup-table study, front re-measured:")
    best_against_v2(study, args.trials_lut, args.seed)


if __name__ == "__main__":
    main()
