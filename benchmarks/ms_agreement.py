"""Are `measure`'s milliseconds real? Its median beside torch.utils.benchmark timing the same built model.

    python benchmarks/ms_agreement.py [--repeats 5] [--busy-anchor 1.57]

The speed anchor is first stored as if its first run had been busy (``--busy-anchor`` times the real one; 1.57 is
the 8.19 ms vs 5.22 ms the issue saw), then each network is timed ``--repeats`` times, alternating:

- ``measure``: ``measure_latency`` with the ``measure`` command's defaults (normalised runs on cpu, 10 s cap,
  median to +-0.5%): its median, in raw milliseconds;
- ``torch.utils.benchmark``: ``Timer.blocked_autorange`` (1 s) on the same built model, same threads, channels-last
  like the latency engine on cpu, under ``torch.inference_mode``.

It prints both medians per network, their ratio, and the run-to-run spread of each (max / min of the repeats):
the ratio should be within that spread, whatever anchor is stored. It also prints the anchor after the re-check.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch
import torch.utils.benchmark as torch_benchmark

from shufflenet_nas.nas.latency import MeasureConfig, _normalisation, measure_latency, reference_anchor_ms, seeded
from shufflenet_nas.search_spaces import BASELINES
from shufflenet_nas.search_spaces.builder import build

NETWORKS = ("shufflenet_v2_x1_0", "shufflenet_v2_x0_5")


def torch_benchmark_ms(model: torch.nn.Module, resolution: int, threads: int, channels_last: bool) -> float:
    """torch.utils.benchmark's median ms of one forward of ``model`` on a random batch-1 input."""
    x = torch.randn(1, 3, resolution, resolution)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    timer = torch_benchmark.Timer("model(x)", globals={"model": model.eval(), "x": x}, num_threads=threads)
    with torch.inference_mode():
        return timer.blocked_autorange(min_run_time=1.0).median * 1e3


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--busy-anchor", type=float, default=1.57, help="the stored anchor, as a multiple of the real")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--max-time", type=float, default=10.0, help="measure's time cap, s")
    args = parser.parse_args(argv)
    os.environ["SHUFFLENET_NAS_CACHE_DIR"] = tempfile.mkdtemp(prefix="ms-agreement-")
    config = MeasureConfig(max_time_s=args.max_time)
    real_anchor = reference_anchor_ms(config)
    path = Path(os.environ["SHUFFLENET_NAS_CACHE_DIR"]) / "anchors.json"
    path.write_text(json.dumps({key: value * args.busy_anchor for key, value in json.loads(path.read_text()).items()}))
    _normalisation._anchors.clear()  # as in a new process, which finds the busy anchor stored
    print(
        f"anchor: {real_anchor:.3f} ms measured, stored as {real_anchor * args.busy_anchor:.3f} ms "
        f"({args.busy_anchor:.2f}x, a busy first run); now re-checked: {reference_anchor_ms(config):.3f} ms"
    )
    rows = []
    for name in NETWORKS:
        genotype = BASELINES[name].genotype.with_resolution(args.resolution)
        model = seeded(lambda genotype=genotype: build(genotype))
        ours, theirs, normalised = [], [], []
        for _ in range(args.repeats):
            result = measure_latency(genotype, config)
            ours.append(result.median_ms)
            normalised.append(result.comparable_ms)
            theirs.append(torch_benchmark_ms(model, args.resolution, config.resolved_threads, config.channels_last))
        row = {
            "measure_ms": statistics.median(ours),
            "torch_benchmark_ms": statistics.median(theirs),
            "measure_spread": max(ours) / min(ours),
            "torch_benchmark_spread": max(theirs) / min(theirs),
            "normalised_ms": statistics.median(normalised),
        }
        row["ratio"] = row["measure_ms"] / row["torch_benchmark_ms"]
        spread = max(row["measure_spread"], row["torch_benchmark_spread"])
        verdict = "within" if 1 / spread <= row["ratio"] <= spread else "OUTSIDE"
        print(
            f"{name} at {args.resolution} px: measure {row['measure_ms']:.3f} ms "
            f"({', '.join(f'{v:.2f}' for v in ours)}), torch.utils.benchmark {row['torch_benchmark_ms']:.3f} ms "
            f"({', '.join(f'{v:.2f}' for v in theirs)}); ratio {row['ratio']:.3f}, {verdict} the run-to-run spread "
            f"(measure {row['measure_spread']:.3f}x, torch.utils.benchmark {row['torch_benchmark_spread']:.3f}x); "
            f"normalised {row['normalised_ms']:.3f} ms",
            flush=True,
        )
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
