"""Start-up time of the CLI against a bare Python on this machine: `shufflenet-nas --help`, `--version`,
`space`, `baselines` and `describe shufflenet_v2_x1_0`, each a fresh process.

Run: python benchmarks/cli_startup.py [--rounds 15]
Each round runs every command once (one untimed warm-up round first, then the order rotates each round, so
that a slow spell of a shared host falls on all of them alike); the table gives the median wall time of each
with its range, its ratio to `python -c pass` and the seconds it adds to it. Markdown, ready for the README.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def cli() -> list[str]:
    """The console script installed next to this Python, else ``python -m shufflenet_nas``."""
    script = Path(sys.executable).with_name("shufflenet-nas")
    if script.is_file():
        return [str(script)]
    found = shutil.which("shufflenet-nas")
    return [found] if found else [sys.executable, "-m", "shufflenet_nas"]


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="Timed rounds (default 15).")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: give at least 1")
    program = cli()
    commands = {
        "`python -c pass`": [sys.executable, "-c", "pass"],
        "`shufflenet-nas --help`": [*program, "--help"],
        "`shufflenet-nas --version`": [*program, "--version"],
        "`shufflenet-nas space`": [*program, "space"],
        "`shufflenet-nas baselines`": [*program, "baselines"],
        "`shufflenet-nas describe shufflenet_v2_x1_0`": [*program, "describe", "shufflenet_v2_x1_0"],
    }
    names = list(commands)
    for name in names:  # warm-up: disk caches, .pyc files
        seconds(commands[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(args.rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(seconds(commands[name]))

    base = statistics.median(times[names[0]])
    cpus = os.cpu_count()
    print(
        f"CLI start-up, {platform.processor() or platform.machine()} ({cpus} logical CPUs), "
        f"Python {platform.python_version()}; median of {args.rounds} interleaved rounds, fresh processes:\n"
    )
    print("| command | median s | range s | x `python -c pass` | added s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in names:
        median = statistics.median(times[name])
        low, high = min(times[name]), max(times[name])
        print(f"| {name} | {median:.3f} | {low:.3f}-{high:.3f} | {median / base:.1f} | {median - base:.3f} |")


if __name__ == "__main__":
    main()
