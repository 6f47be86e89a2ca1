"""Ratio fidelity: do the latency ratios the product reports agree with raw interleaved ratios timed in the same run?

    python benchmarks/ratio_fidelity.py [--target cpu] [--rounds 20] [--repeats 3] [--resolution 224]

For each pair below (a network / ShuffleNet V2 1.0x, batch 1, the default threads), the script takes, in one
process:

- **truth**: the raw interleaved ratio of two long runs, one before the methods below and one after
  (``measure_interleaved``, ``--rounds`` rounds of 5 forwards each, the two networks alternating), their rounds
  pooled: the median ratio with its 95% bootstrap interval (one run alone can catch a disturbance);
- **re-measured**: the ratio ``compare`` and the search's headline (``confirm_bests``) report: the same method with
  their default 10 rounds, ``--repeats`` times;
- **normalised, measure**: the ratio of two ``measure_latency`` figures as a search compares them
  (``comparable_ms``: normalised to the speed anchor on cpu and onnxruntime) with the defaults of ``measure``
  (10 s cap, +-0.5%), ``--repeats`` times;
- **normalised, search**: the same with the search's defaults (0.5 s cap, +-1%): how a search's table and ranking
  compare two trials.

and prints, per method and pair, the median of the repeats and its deviation from the truth in per cent (the
method's bias), and the worst single repeat's deviation (bias and the spread of one measurement together); then
the largest of each over all pairs. The pairs differ in size and structure: a small and a large network, a
grouped V1, SE k7 networks with a narrow and a wide stem.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from shufflenet_nas.nas.latency import Interleaved, MeasureConfig, measure_interleaved, measure_latency
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
METHODS = (
    "re-measured (compare and the search headline, 10 rounds)",
    "normalised, measure defaults (10 s, ±0.5%)",
    "normalised, search defaults (0.5 s, ±1%)",
)


def deviation(ratio: float, truth: float) -> float:
    """``ratio``'s deviation from ``truth``, in per cent."""
    return 100 * (ratio / truth - 1)


def method_ratios(config: MeasureConfig, genotype: Genotype, reference: Genotype) -> dict[str, Callable[[], float]]:
    """Per method, a function taking one ratio of ``genotype`` to ``reference`` the way that method does."""
    measure = MeasureConfig(config.target, threads=config.threads)
    search = MeasureConfig(config.target, threads=config.threads, max_time_s=0.5, rel_precision=0.01)

    def normalised(settings: MeasureConfig) -> Callable[[], float]:
        return lambda: (
            measure_latency(genotype, settings).comparable_ms / measure_latency(reference, settings).comparable_ms
        )

    return {
        METHODS[0]: lambda: measure_interleaved([genotype, reference], config, rounds=10).ratio(0, 1)[0],
        METHODS[1]: normalised(measure),
        METHODS[2]: normalised(search),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the comparison; returns each method's largest bias over the pairs, in per cent."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--target", default="cpu", choices=("cpu", "gpu", "onnxruntime"))
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the long raw interleaved run (the truth)")
    parser.add_argument("--repeats", type=int, default=3, help="ratios per method and pair")
    parser.add_argument("--resolution", type=int, default=224, help="input resolution of every network")
    parser.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=list(PAIRS), metavar="PAIR")
    args = parser.parse_args(argv)
    config = MeasureConfig(target=args.target)
    reference = BASELINES[REFERENCE].genotype.with_resolution(args.resolution)
    started = time.perf_counter()
    print(
        f"ratio fidelity on {args.target} at {args.resolution} px: each network / {REFERENCE}, "
        f"truth = 2 x {args.rounds} interleaved raw rounds; deviations from it, {args.repeats} repeats per method"
    )
    bias, worst = dict.fromkeys(METHODS, 0.0), dict.fromkeys(METHODS, 0.0)
    for name in args.pairs:
        genotype = PAIRS[name].with_resolution(args.resolution)
        before = measure_interleaved([genotype, reference], config, rounds=args.rounds)
        taken = {
            method: [take() for _ in range(args.repeats)]
            for method, take in method_ratios(config, genotype, reference).items()
        }
        after = measure_interleaved([genotype, reference], config, rounds=args.rounds)
        pooled = Interleaved(tuple(a + b for a, b in zip(before.times, after.times, strict=True)), 5, before.provenance)
        ratio, low, high = pooled.ratio(0, 1)
        halves = f"{before.ratio(0, 1)[0]:.3f} before, {after.ratio(0, 1)[0]:.3f} after"
        line = [f"{name:26s} truth {ratio:.3f} [{low:.3f}, {high:.3f}] ({halves})"]
        for method, ratios in taken.items():
            median = deviation(statistics.median(ratios), ratio)
            single = max((deviation(r, ratio) for r in ratios), key=abs)
            bias[method], worst[method] = max(bias[method], abs(median)), max(worst[method], abs(single))
            label = method.split(" (")[0]
            line.append(f"{label} {statistics.median(ratios):.3f} ({median:+.1f}%, worst {single:+.1f}%)")
        print(" | ".join(line), flush=True)
    print("over all pairs, the largest deviation from the truth of the median of the repeats (bias), of one (worst):")
    for method in METHODS:
        print(f"  {method}: bias {bias[method]:.1f}%, worst {worst[method]:.1f}%")
    print(f"({time.perf_counter() - started:.0f} s)")
    return bias


if __name__ == "__main__":
    main()
