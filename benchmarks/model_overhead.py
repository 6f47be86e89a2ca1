"""Framework overhead: the project's ShuffleNet V2 1.0x vs a plain implementation of the same network.

    python benchmarks/model_overhead.py [--target cpu|gpu|onnxruntime] [--threads N] [--seconds 60]

The plain model below is written torchvision-style and imports nothing from the project's blocks; the project's
weights are copied into it and the outputs compared, so both are provably the same network. Both are prepared
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
from torch import nn

from shufflenet_nas import MeasureConfig
from shufflenet_nas.nas.latency import sample_times, summarize, timed_forward
from shufflenet_nas.search_spaces import build, resolve_arch


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batch, channels, height, width = x.size()
    x = x.view(batch, groups, channels // groups, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batch, -1, height, width)


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        branch = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch, 1, 1, 0, bias=False),
                nn.BatchNorm2d(branch),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch, branch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
            nn.Conv2d(branch, branch, 3, stride, 1, groups=branch, bias=False),
            nn.BatchNorm2d(branch),
            nn.Conv2d(branch, branch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class PlainShuffleNetV2(nn.Module):
    def __init__(self, repeats: tuple[int, ...] = (4, 8, 4), channels: tuple[int, ...] = (24, 116, 232, 464, 1024)):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, channels[0], 3, 2, 1, bias=False), nn.BatchNorm2d(channels[0]))
        self.conv1.append(nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inp = channels[0]
        stages = []
        for count, oup in zip(repeats, channels[1:4], strict=True):
            stages.append(
                nn.Sequential(InvertedResidual(inp, oup, 2), *(InvertedResidual(oup, oup, 1) for _ in range(count - 1)))
            )
            inp = oup
        self.stage2, self.stage3, self.stage4 = stages
        self.conv5 = nn.Sequential(
            nn.Conv2d(inp, channels[-1], 1, 1, 0, bias=False), nn.BatchNorm2d(channels[-1]), nn.ReLU(inplace=True)
        )
        self.fc = nn.Linear(channels[-1], 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(self.conv5(x).mean([2, 3]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--runtime", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to alternate the two models")
    args = parser.parse_args()

    torch.manual_seed(0)
    project = build(resolve_arch("shufflenet_v2_x1_0")).eval()
    plain = PlainShuffleNetV2().eval()
    tensors = [*project.state_dict().values()]
    plain.load_state_dict(dict(zip(plain.state_dict(), tensors, strict=True)))
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
