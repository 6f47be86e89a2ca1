"""Seconds per zero-cost proxy for ShuffleNet V2 1.0x at 224x224 on this CPU (the judged figure: the default).

Run: python benchmarks/proxy_speed.py [--repeats 7] [--arch shufflenet_v2_x1_0]
Each figure is the median of --repeats calls of ``compute_proxies`` (weights built, batch scored) after one
warm-up call; the cold first call is printed too. params / mflops are cached per part after the first call.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch

from shufflenet_nas import PROXY_NAMES, compute_proxies
from shufflenet_nas.nas.proxies import DEFAULT_BATCH_SIZE, DEFAULT_PROXY
from shufflenet_nas.search_spaces import resolve_arch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="shufflenet_v2_x1_0")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    genotype = resolve_arch(args.arch)
    print(
        f"{args.arch} at {genotype.resolution}x{genotype.resolution}, batch {DEFAULT_BATCH_SIZE}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    for name in (DEFAULT_PROXY, *(n for n in PROXY_NAMES if n not in (DEFAULT_PROXY, "train"))):
        cold = compute_proxies(genotype, [name])[name].seconds
        times = [compute_proxies(genotype, [name])[name].seconds for _ in range(args.repeats)]
        label = f"{name} (default)" if name == DEFAULT_PROXY else name
        print(f"{label:18s} median {statistics.median(times):.3f} s  min {min(times):.3f} s  cold {cold:.3f} s")


if __name__ == "__main__":
    main()
