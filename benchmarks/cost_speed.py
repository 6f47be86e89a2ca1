"""Time to count one part's cost: the traced count (fvcore + dispatch trace) vs the symbolic replay.

Run: python benchmarks/cost_speed.py [--architectures 40] [--rounds 3]
The parts of --architectures random architectures of the 146 MFLOPs space at 224 px, each counted both ways
in alternating rounds (the same parts, so drift hits both alike); prints the median seconds per part of
each, their ratio, and whether the two counts agree on every part.
"""

from __future__ import annotations

import argparse
import statistics
import time

from shufflenet_nas.nas.cost import replayed_cost
from shufflenet_nas.nas.trace_cost import traced_cost
from shufflenet_nas.search_spaces import SearchSpace
from shufflenet_nas.search_spaces.plan import network_plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    genotypes = SearchSpace(budget_mflops=146).sample_architectures(args.architectures, seed=0)
    parts = list(dict.fromkeys(spec for genotype in genotypes for spec in network_plan(genotype)))
    timings: dict[str, list[float]] = {"traced": [], "replayed": []}
    for _ in range(args.rounds):
        for name, count in (("traced", traced_cost), ("replayed", replayed_cost)):
            start = time.perf_counter()
            for spec in parts:
                count(spec)
            timings[name].append((time.perf_counter() - start) / len(parts))
    traced, replayed = (statistics.median(timings[name]) for name in ("traced", "replayed"))
    agree = sum(traced_cost(spec) == replayed_cost(spec) for spec in parts)
    print(f"{len(parts)} distinct parts of {args.architectures} random architectures (146 MFLOPs space, 224 px)")
    print(f"traced (fvcore + dispatch trace): {traced * 1e3:.2f} ms per part")
    print(f"symbolic replay:                  {replayed * 1e6:.1f} us per part")
    print(f"traced / replayed: {traced / replayed:.0f}x; counts agree on {agree}/{len(parts)} parts")


if __name__ == "__main__":
    main()
