"""Framework overhead: the project's ShuffleNet V2 1.0x vs a plain implementation of the same network.

    python benchmarks/model_overhead.py [--target cpu|gpu|onnxruntime] [--threads N] [--seconds 60]

The plain model (torchvision_shufflenet_v2.py) is torchvision's layout and imports nothing from the project; the
project's weights load into it by key and the outputs compared, so both are provably the same network. Both are prepared
by the same harness (``latency.timed_forward``) and timed in one process, single forwards interleaved in
ABBA order; the figure is the median over rounds of each round's project / plain ratio (a round's four runs
take a few tens of ms, so the host's speed swings cancel in it), with its 95% confidence interval. The
project's model must not be slower (the interval reaches 1 or below).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torchvision_shufflenet_v2 import TorchvisionShuffleNetV2

from shufflenet_nas import MeasureConfig
from shufflenet_nas.nas.latency import sample_times, summarize, timed_forward
from shufflenet_nas.search_spaces import build, resolve_arch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--runtime", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to alternate the two models")
    args = parser.parse_args()

    torch.manual_seed(0)
    project = build(resolve_arch("shufflenet_v2_x1_0")).eval()
    plain = TorchvisionShuffleNetV2([24, 116, 232, 464, 1024]).eval()
    plain.load_state_dict(project.state_dict())  # the same module names: the weights load by key
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        difference = (project(x) - plain(x)).abs().max().item()
    params = sum(p.numel() for p in plain.parameters())
    print(f"same network: {params:,} parameters each, max output difference {difference:.2e}")

    config = MeasureConfig(args.target, threads=args.threads, runtime=args.runtime)
    times: dict[str, list[float]] = {"project": [], "plain": []}
    with (
        timed_forward(project, (3, 224, 224), config) as (project_step, _),
        timed_forward(plain, (3, 224, 224), config) as (plain_step, _),
    ):
        steps = {"project": project_step, "plain": plain_step}
        for step in steps.values():
            sample_times(step, max_time_s=1.0, rel_precision=0.01)  # warm up both
        deadline = time.perf_counter() + args.seconds
        while time.perf_counter() < deadline:
            for name in ("project", "plain", "plain", "project"):  # ABBA: neither always runs first
                times[name].append(steps[name]())
    project_stats, plain_stats = summarize(times["project"]), summarize(times["plain"])
    # One ratio per ABBA round (4 runs within a few tens of ms): the host's speed swings cancel in each.
    project_rounds = np.add(times["project"][0::2], times["project"][1::2])
    plain_rounds = np.add(times["plain"][0::2], times["plain"][1::2])
    ratios = summarize(list(project_rounds / plain_rounds))
    verdict = "not slower" if ratios.median_ms * (1 - ratios.ci_rel) <= 1.0 else "SLOWER than the plain implementation"
    print(
        f"{config.target} / {config.resolved_runtime}, {config.resolved_threads} threads, batch 1, fp32, 224x224, "
        f"{project_stats.runs} runs each: project {project_stats.median_ms:.3f} ms (±{project_stats.ci_rel:.1%}) "
        f"vs plain {plain_stats.median_ms:.3f} ms (±{plain_stats.ci_rel:.1%})"
    )
    print(
        f"project / plain, median of {ratios.runs} paired ABBA rounds: {ratios.median_ms:.4f} "
        f"(95% CI ±{ratios.median_ms * ratios.ci_rel:.4f}): {verdict}"
    )


if __name__ == "__main__":
    main()
