"""Across-process precision: one network measured in N separate processes; CV of the N medians.

    python benchmarks/latency_precision.py                      # cpu, shufflenet_v2_x1_0, batch 1, 224x224
    python benchmarks/latency_precision.py --target gpu         # CUDA-graph replay (the gpu default)
    python benchmarks/latency_precision.py --target gpu --runtime eager

Each process measures twice: with the `measure` command's defaults (10 s cap, median to +-0.5%) and with the
search's defaults (0.5 s cap, +-1%); the medians compared are the ones a search compares (normalised where the
target normalises). Target: CV of the medians <= 2% (cpu batch 1; gpu cudagraph).
Processes run one after another, sharing a fresh cache directory: the first one measures the speed anchor
(see `shufflenet_nas.nas.latency`). Where the measurement is normalised (cpu, onnxruntime) the CV of the raw
medians is printed too: it shows how much the machine's own speed moved between processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from shufflenet_nas.nas.latency import comparable_ms

CONFIGS = {"measure defaults (10 s cap, ±0.5%)": (10.0, 0.005), "search defaults (0.5 s cap, ±1%)": (0.5, 0.01)}


def child(args: argparse.Namespace) -> None:
    from shufflenet_nas.nas.latency import MeasureConfig, measure_latency
    from shufflenet_nas.search_spaces import resolve_arch

    genotype = resolve_arch(args.arch)
    results = {}
    for name, (max_time_s, rel_precision) in CONFIGS.items():
        config = MeasureConfig(
            args.target, args.batch, args.dtype, args.threads, args.runtime, max_time_s, rel_precision, args.normalize
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
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    command = [sys.executable, __file__, "--child", *sys.argv[1:]]
    scratch = tempfile.TemporaryDirectory()
    environment = os.environ | {"SHUFFLENET_NAS_CACHE_DIR": scratch.name}
    runs = []
    for index in range(args.processes):
        completed = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
        if completed.returncode:
            sys.exit(f"process {index + 1} failed:\n{completed.stderr.strip()}")
        runs.append(json.loads(completed.stdout))
        latest = runs[-1]
        medians = "  ".join(f"{comparable_ms(latest[name]):.4f} ms ({latest[name]['runs']} runs)" for name in CONFIGS)
        print(f"process {index + 1}: {medians}", flush=True)
    first = runs[0][next(iter(CONFIGS))]
    print(
        f"\n{args.arch}: {first['target']} / {first['runtime']} on {first['device']}, torch {first['torch']}, "
        f"{first['threads']} threads, batch {first['batch']}, {first['dtype']}, {first['resolution']}px, "
        + (
            f"normalised to {first['reference']} (anchor {first['reference_anchor_ms']:.3f} ms)"
            if first["normalized"]
            else "raw"
        )
    )
    for name in CONFIGS:
        medians = [comparable_ms(run[name]) for run in runs]
        cv = statistics.stdev(medians) / statistics.mean(medians)
        verdict = "ok" if cv <= 0.02 else "above the 2% target"
        print(
            f"{name}: medians {', '.join(f'{m:.4f}' for m in medians)} ms; "
            f"CV across {len(runs)} processes {cv:.2%} ({verdict})"
        )
        if first["normalized"]:
            raw = [run[name]["median_ms"] for run in runs]
            raw_cv = statistics.stdev(raw) / statistics.mean(raw)
            print(f"    raw medians {', '.join(f'{m:.4f}' for m in raw)} ms; CV {raw_cv:.2%}")


if __name__ == "__main__":
    main()
