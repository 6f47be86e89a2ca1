"""Ratio fidelity: do the latency ratios the product reports agree with raw interleaved ratios timed in the same run?

    python benchmarks/ratio_fidelity.py [--target cpu] [--rounds 20] [--repeats 3]

For each pair below (a network / ShuffleNet V2 1.0x, all at 224 px, batch 1, the default threads), the script
takes, in one process:

- **truth**: the raw interleaved ratio of a long run (``measure_interleaved``, ``--rounds`` rounds of 5 forwards,
  the two networks alternating), with its 95% bootstrap interval;
- **re-measured**: the ratio ``compare`` and the search's headline (``confirm_bests``) report: the same method with
  their default 10 rounds, ``--repeats`` times;
- **normalised**: the ratio of two ``measure_latency`` medians with the defaults of ``measure`` (normalised to the
  speed anchor on cpu and onnxruntime), the way a search's table and ranking compare two trials.

and prints each one's deviation from the truth, in per cent, and the worst over all pairs. The pairs differ in
size and structure: a small and a large network, a grouped V1, a wide-stem SE k7 network.
"""

from __future__ import annotations

import argparse
import statistics
import time

from shufflenet_nas.nas.latency import MeasureConfig, measure_interleaved, measure_latency
from shufflenet_nas.search_spaces import BASELINES, Genotype

REFERENCE = "shufflenet_v2_x1_0"
PAIRS = {
    "V2 0.5x": BASELINES["shufflenet_v2_x0_5"].genotype,
    "V2 2.0x": BASELINES["shufflenet_v2_x2_0"].genotype,
    "V1 g8 1.0x": BASELINES["shufflenet_v1_g8_x1_0"].genotype,
    "V1 g1 0.5x": BASELINES["shufflenet_v1_g1_x0_5"].genotype,
    "stem32 SE k7": Genotype.from_string(
        "stem32s4-v2_n3_c96_g1_r0.5_k7_se-v2_n6_c192_g1_r0.5_k7_se-v2_n3_c384_g1_r0.5_k7_se-head1024"
    ),
    "stem64 SE k7 (wide stem)": Genotype.from_string(
        "stem64s4-v2_n2_c128_g1_r0.5_k7_se-v2_n4_c192_g1_r0.5_k7_se-v2_n2_c384_g1_r0.5_k7_se-head1024"
    ),
}


def _deviation(ratio: float, truth: float) -> float:
    return 100 * (ratio / truth - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu", choices=("cpu", "gpu", "onnxruntime"))
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the long raw interleaved run (the truth)")
    parser.add_argument("--repeats", type=int, default=3, help="re-measurements and normalised ratios per pair")
    args = parser.parse_args()
    config = MeasureConfig(target=args.target)
    reference = BASELINES[REFERENCE].genotype
    started = time.perf_counter()
    print(f"ratio fidelity on {args.target}: each network / {REFERENCE}, truth = {args.rounds} interleaved raw rounds")
    worst = {"re-measured (compare and the search headline, 10 rounds)": 0.0}
    worst["normalised (measure defaults)"] = 0.0
    for name, genotype in PAIRS.items():
        truth = measure_interleaved([genotype, reference], config, rounds=args.rounds)
        ratio, low, high = truth.ratio(0, 1)
        line = f"{name:26s} truth {ratio:.3f} [{low:.3f}, {high:.3f}]"
        for label, rounds in (("re-measured (compare and the search headline, 10 rounds)", 10),):
            ratios = [
                measure_interleaved([genotype, reference], config, rounds=rounds).ratio(0, 1)[0]
                for _ in range(args.repeats)
            ]
            deviations = [_deviation(r, ratio) for r in ratios]
            worst[label] = max(worst[label], max(abs(d) for d in deviations))
            line += f" | re-measured: {statistics.median(ratios):.3f} (worst {max(deviations, key=abs):+.1f}%)"
        normalised = []
        for _ in range(args.repeats):
            candidate = measure_latency(genotype, config).median_ms
            normalised.append(candidate / measure_latency(reference, config).median_ms)
        deviations = [_deviation(r, ratio) for r in normalised]
        worst["normalised (measure defaults)"] = max(
            worst["normalised (measure defaults)"], max(abs(d) for d in deviations)
        )
        line += f" | normalised {statistics.median(normalised):.3f} (worst {max(deviations, key=abs):+.1f}%)"
        print(line, flush=True)
    print("worst deviation from the truth over all pairs and repeats:")
    for label, value in worst.items():
        print(f"  {label}: {value:.1f}%")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
