"""Across-process precision: one network measured in N separate processes; CV of the N medians.

    python benchmarks/latency_precision.py                      # cpu, shufflenet_v2_x1_0, batch 1, 224x224
    python benchmarks/latency_precision.py --target gpu         # CUDA-graph replay (the gpu default)
    python benchmarks/latency_precision.py --target gpu --runtime eager

Each process measures twice: with the `measure` command's defaults (10 s cap, median to +-0.5%) and with a
search-friendly config (0.4 s cap, +-1%). Target: CV of the medians <= 2% (cpu batch 1; gpu cudagraph).
Processes run one after another; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CONFIGS = {"measure defaults (10 s cap, ±0.5%)": (10.0, 0.005), "search-friendly (0.4 s cap, ±1%)": (0.4, 0.01)}


def child(args: argparse.Namespace) -> None:
    from shufflenet_nas.nas.latency import MeasureConfig, measure_latency
    from shufflenet_nas.search_spaces import resolve_arch

    genotype = resolve_arch(args.arch)
    results = {}
    for name, (max_time_s, rel_precision) in CONFIGS.items():
        config = MeasureConfig(
            args.target, args.batch, args.dtype, args.threads, args.runtime, max_time_s, rel_precision
        )
        results[name] = measure_latency(genotype, config).to_dict()
    sys.stdout.write(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="shufflenet_v2_x1_0")
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--runtime", default=None)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    command = [sys.executable, __file__, "--child", *sys.argv[1:]]
    runs = []
    for index in range(args.processes):
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode:
            sys.exit(f"process {index + 1} failed:\n{completed.stderr.strip()}")
        runs.append(json.loads(completed.stdout))
        medians = "  ".join(f"{runs[-1][name]['median_ms']:.4f} ms ({runs[-1][name]['runs']} runs)" for name in CONFIGS)
        print(f"process {index + 1}: {medians}", flush=True)
    first = runs[0][next(iter(CONFIGS))]
    print(
        f"\n{args.arch}: {first['target']} / {first['runtime']} on {first['device']}, torch {first['torch']}, "
        f"{first['threads']} threads, batch {first['batch']}, {first['dtype']}, {first['resolution']}px"
    )
    for name in CONFIGS:
        medians = [run[name]["median_ms"] for run in runs]
        cv = statistics.stdev(medians) / statistics.mean(medians)
        verdict = "ok" if cv <= 0.02 else "above the 2% target"
        print(
            f"{name}: medians {', '.join(f'{m:.4f}' for m in medians)} ms; "
            f"CV across {len(runs)} processes {cv:.2%} ({verdict})"
        )


if __name__ == "__main__":
    main()
