"""Every GPU figure in one short run, for a session that is lent a GPU (run through ``benchmarks/gpu_check.sh``).

    python benchmarks/gpu_check.py --out DIR              # on the GPU machine: about 6 minutes on an H200
    python benchmarks/gpu_check.py --out DIR --target cpu --quick   # the same steps on a CPU, tiny (a dry run)

Steps, each a subprocess with its own time limit, its output kept in ``DIR/<step>.log``; a step that fails is
reported and the rest still run:

1. ``environment``: torch, CUDA, the device's name.
2. ``precision``: ``benchmarks/latency_precision.py`` (V2 1.0x in 5 processes) with CUDA-graph replay and eager.
3. ``search``: ``search --target gpu --budget 146MFLOPs --n-trials 30`` and its re-measured headline.
4. ``compare``: that study's front and the papers' models re-measured together (charts into ``DIR/compare``).
5. ``guidelines``: ``guidelines --target gpu --quick``: ShuffleNet V2's G1-G4 on the device (charts into
   ``DIR/guidelines``).
6. ``data``, ``train``: V2 0.5x trained 3 epochs on a generated 2-pattern set on the GPU (mixed precision): top-1,
   img/s.
7. ``lut``: the lookup table's accuracy on the device (``benchmarks/lut_accuracy.py``).
8. ``ratios``: ``benchmarks/ratio_fidelity.py`` on the device, fewer rounds.

The last lines printed are one block to paste into a note (also ``DIR/summary.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Step:
    name: str
    command: list[str]
    timeout_s: int
    figures: str = ""  # what the summary takes from the output (filled in by ``run``)
    ok: bool = False
    seconds: float = 0.0


def steps(target: str, out: Path, quick: bool) -> list[Step]:
    """The commands of the check for ``target`` (``quick``: tiny settings, for a dry run on a CPU)."""
    cli = [sys.executable, "-m", "shufflenet_nas"]
    small = ["--resolution", "64"] if quick else []
    trials = "4" if quick else "30"
    data = out / "stripes"
    device = "gpu" if target == "gpu" else "cpu"
    precision = [sys.executable, "benchmarks/latency_precision.py", "--target", target]
    return [
        Step("environment", [sys.executable, "-c", _ENVIRONMENT], 60),
        Step(
            "precision (cudagraph)" if target == "gpu" else "precision",
            [*precision, "--processes", "2" if quick else "5"],
            240,
        ),
        *(
            [Step("precision (eager)", [*precision, "--runtime", "eager", "--processes", "5"], 240)]
            if target == "gpu"
            else []
        ),
        Step(
            "search",
            [
                *cli,
                "search",
                "--target",
                target,
                "--budget",
                "146MFLOPs",
                "--n-trials",
                trials,
                *small,
                "--results-dir",
                str(out / "results"),
                "--study",
                "check",
                "--json",
            ],
            420,
        ),
        Step(
            "compare",
            [
                *cli,
                "compare",
                str(out / "results" / "check"),
                "--target",
                target,
                "--rounds",
                "5" if quick else "10",
                "--out",
                str(out / "compare"),
                "--json",
            ],
            240,
        ),
        Step(
            "guidelines",
            [
                *cli,
                "guidelines",
                "--target",
                target,
                "--quick",
                *(["--rounds", "5"] if quick else []),
                "--json",
                "--out",
                str(out / "guidelines"),
            ],
            180,
        ),
        Step("data", [sys.executable, "-c", _STRIPES.format(path=str(data))], 60),
        Step(
            "train",
            [
                *cli,
                "train",
                "shufflenet_v2_x0_5",
                "--data",
                str(data),
                "--epochs",
                "1" if quick else "3",
                "--device",
                device,
                "--out",
                str(out / "weights"),
                "--json",
            ],
            300,
        ),
        Step(
            "lut",
            [
                sys.executable,
                "benchmarks/lut_accuracy.py",
                "--target",
                target,
                "--samples",
                "3" if quick else "10",
                "--calibration",
                "2" if quick else "10",
                *(["--resolution", "64"] if quick else []),
            ],
            420,
        ),
        *(
            []
            if quick
            else [
                Step(
                    "ratios",
                    [
                        sys.executable,
                        "benchmarks/ratio_fidelity.py",
                        "--target",
                        target,
                        "--rounds",
                        "10",
                        "--repeats",
                        "1",
                    ],
                    300,
                )
            ]
        ),
    ]


_ENVIRONMENT = (
    "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', "
    "torch.cuda.is_available(), 'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
)
_STRIPES = (
    "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from conftest import make_stripes_dataset; "
    "p = Path({path!r}); p.exists() or make_stripes_dataset(p, per_class=150); print('stripes at', p)"
)


def run(step: Step, log: Path) -> None:
    """Run ``step``, keep its output in ``log`` and the figures the summary shows in ``step.figures``."""
    started = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run(step.command, cwd=ROOT, capture_output=True, text=True, timeout=step.timeout_s, env=env)
        output, step.ok = done.stdout + done.stderr, done.returncode == 0
    except subprocess.TimeoutExpired as expired:
        output = f"{expired.stdout or ''}{expired.stderr or ''}\ntimed out after {step.timeout_s} s"
    step.seconds = time.perf_counter() - started
    log.write_text(f"$ {' '.join(step.command)}\n{output}")
    last = output.strip().splitlines()[-1] if output.strip() else ""
    step.figures = figures(step.name, output) if step.ok else last


def figures(name: str, output: str) -> str:
    """The figures of a step's output worth a note: one line."""
    if name.startswith("search"):
        data = json.loads(output[output.index("{") : output.rindex("}") + 1])
        comparisons = data.get("comparisons") or {}
        return (
            "; ".join(
                f"{family}: {c['latency_change_pct']:+.1f}% vs {c['baseline']} (ratio {c['re_measured']['ratio']:.3f} "
                f"[{c['re_measured']['low']:.3f}, {c['re_measured']['high']:.3f}])"
                if c.get("re_measured")
                else f"{family}: {c['latency_change_pct']:+.1f}% vs {c['baseline']}"
                for family, c in comparisons.items()
            )
            or "no best"
        )
    if name == "compare":
        data = json.loads(output[output.index("{") : output.rindex("}") + 1])
        rows = sorted(data["rows"], key=lambda r: r["ratio"])
        return ", ".join(f"{r['label']} {r['ms']:.3f} ms x{r['ratio']:.3f}" for r in rows[:4]) + f" ({len(rows)} rows)"
    if name == "guidelines":
        data = json.loads(output[output.index("{") : output.rindex("}") + 1])
        return "; ".join(
            f"{g['key']} {g['verdict']} ({t['ratio']:.3f} [{t['low']:.3f}, {t['high']:.3f}] at x{t['width']})"
            for g in data["guidelines"]
            for t in g["tables"][:1]
        )
    if name == "train":
        data = json.loads(output[output.index("{") : output.rindex("}") + 1])
        rate = max(epoch["images_per_s"] for epoch in data["history"])
        epochs = len(data["history"])
        return f"top-1 {100 * data['accuracy_top1']:.1f}% after {epochs} epochs, {rate:,.0f} img/s, {data['device']}"
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return " | ".join(lines[-2:]) if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--target", default="gpu", choices=("gpu", "cpu"))
    parser.add_argument("--quick", action="store_true", help="tiny settings: a dry run of every step")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    done = []
    for step in steps(args.target, args.out.resolve(), args.quick):
        run(step, args.out / f"{re.sub(r'[^a-z0-9]+', '-', step.name).strip('-')}.log")
        print(f"[{'ok' if step.ok else 'FAILED'}] {step.name} ({step.seconds:.0f} s): {step.figures}", flush=True)
        done.append(step)
    block = [f"GPU check ({args.target}{', quick' if args.quick else ''}), {time.perf_counter() - started:.0f} s:"]
    block += [f"- {s.name}: {'ok' if s.ok else 'FAILED'} in {s.seconds:.0f} s; {s.figures}" for s in done]
    (args.out / "summary.md").write_text("\n".join(block) + "\n")
    print("\n".join(block))


if __name__ == "__main__":
    main()
