"""How many untimed runs does the speed reference need after another network? (the normalisation's warm-up)

    python benchmarks/reference_warmup.py [--seconds 4] [--warmups 1 3]

For V2 0.5x, 1.0x and 2.0x at 224 px as the network measured, it runs the normalisation's blocks by hand: the
reference (V2 1.0x at 96 px) ``warm-up`` times untimed, once timed, the network once untimed, then timed runs of
the network for about 8 reference durations; and prints the reference's median and 10th percentile per network.
A reference timed warm is as fast beside any network; a cold one is slower, and slower beside larger networks,
which biases normalised ratios towards 1.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from shufflenet_nas.nas.latency import MeasureConfig, seeded, timed_forward
from shufflenet_nas.nas.latency._normalisation import BLOCK_REFERENCES, reference_step
from shufflenet_nas.search_spaces import BASELINES
from shufflenet_nas.search_spaces.builder import build

NETWORKS = ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x2_0")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per network and warm-up count")
    parser.add_argument("--warmups", type=int, nargs="+", default=[1, 3])
    args = parser.parse_args()
    config = MeasureConfig()
    reference = reference_step(config)
    for warmups in args.warmups:
        for name in NETWORKS:
            genotype = BASELINES[name].genotype
            with timed_forward(seeded(lambda genotype=genotype: build(genotype)), (3, 224, 224), config) as (step, _):
                references: list[float] = []
                started = time.perf_counter()
                while time.perf_counter() - started < args.seconds:
                    for _ in range(warmups):
                        reference()
                    references.append(reference())
                    step()
                    left = BLOCK_REFERENCES * references[-1]
                    while left > 0:
                        left -= step()
            print(
                f"{warmups} warm-up run(s), beside {name}: reference median {np.median(references):.3f} ms, "
                f"p10 {np.percentile(references, 10):.3f} ms ({len(references)} blocks)",
                flush=True,
            )


if __name__ == "__main__":
    main()
