"""Gaming probes: move one design dimension at a time on V2 1.0x and V1 g3 1.0x and print how each proxy moves.

Run: python benchmarks/proxy_gaming.py [--resolution 224] [--seeds 0,1,2] [--proxies synflow,naswot,...]
     [--models shufflenet_v2_x1_0,shufflenet_v1_g3_x1_0] [--all-seeds] [--json FILE]

For each base model and each probe (stem width halved / doubled; split ratio 0.25 / 0.75 everywhere (V2); head
width 512 / 1536 (V2); one unit more / less in every stage with the stage widths rescaled to keep the base's
MFLOPs; SE everywhere; residual toggled everywhere (on for V2, off for V1, whose paper model has it); kernel 5 and
7 everywhere; channel shuffle off everywhere; and, as references where the papers give accuracy, the same family at
0.5x and 1.5x width) every zero-cost proxy is computed with ``compute_proxies`` on the default seeded noise batch
(batch 8). Four tables per base model follow:

1. Δscore = probe - base at the first seed, with ΔMFLOPs, Δparams and the paper's Δtop-1 (points, + = more
   accurate) where the probe is itself a paper model (V1 Table 3's no-shuffle model, the width references);
2. Δscore per added MFLOP (rows whose |ΔMFLOPs| >= 3% of the base only; fixed-FLOPs probes have no slope);
3. that slope divided by the slope of the wider reference model (uniform widening, the papers' way of buying
   accuracy with FLOPs): > 1 means the proxy pays more per MFLOP for the change than for widening;
4. Δscore in units of the proxy's seed-to-seed spread on the base model (max - min over --seeds): |x| < 1 is
   within the noise of one seed. ``exact``: the proxy does not depend on the seed (relu_count).

A search can exploit a probe whose per-MFLOP slope beats widening's (table 3 > 1) while the papers say the change
buys little accuracy, and is blind to one whose Δ stays within the spread although the papers measure a real
change (SE, shuffle).
Probes are scored at the first seed only (paired with the base at that seed); --all-seeds scores each at every
seed and averages the paired Δ (x3 the run time).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from shufflenet_nas import BASELINES, PROXY_NAMES, Genotype, compute_proxies, count_cost
from shufflenet_nas.nas.proxies import DEFAULT_BATCH_SIZE, parse_proxy_names

DEFAULT_MODELS = ("shufflenet_v2_x1_0", "shufflenet_v1_g3_x1_0")
DEFAULT_PROXIES = tuple(name for name in PROXY_NAMES if name not in ("train", "mflops"))  # params: the default
MIN_SLOPE_SHARE = 0.03  # below 3% of the base MFLOPs a per-MFLOP slope divides by a near-zero (fixed-FLOPs) change
# Width references per base model: the papers' own way of buying accuracy with FLOPs.
WIDTH_REFERENCES = {
    "shufflenet_v2_x1_0": ("shufflenet_v2_x0_5", "shufflenet_v2_x1_5"),
    "shufflenet_v1_g3_x1_0": ("shufflenet_v1_g3_x0_5", "shufflenet_v1_g3_x1_5"),
}


@dataclass(frozen=True)
class Probe:
    """One architecture change: a label, the changed genotype, and whether it is a reference (paper) model."""

    label: str
    genotype: Genotype
    reference: bool = False


# ---- the probes ----------------------------------------------------------------------------------------
def all_stages(genotype: Genotype, **changes: Any) -> Genotype:
    """``genotype`` with the same gene changes applied to every stage."""
    return replace(genotype, stages=tuple(replace(stage, **changes) for stage in genotype.stages))


def rescaled_depth(genotype: Genotype, delta: int) -> Genotype | None:
    """Every stage ``delta`` units deeper, stage widths scaled together to the nearest valid widths whose MFLOPs are
    closest to the base's (stem and head kept); None when no valid width set exists."""
    target = count_cost(genotype).mflops
    stages = [replace(stage, repeats=stage.repeats + delta) for stage in genotype.stages]
    if any(stage.repeats < 1 for stage in stages):
        return None
    first = genotype.stages[0].out_channels
    multiple = math.lcm(*(stage.groups * (2 if stage.unit == "v2" else 1) for stage in stages))
    best: tuple[float, Genotype] | None = None
    for width in range(multiple, 2 * first + 1, multiple):
        scale = width / first
        widths = [max(multiple, round(s.out_channels * scale / multiple) * multiple) for s in genotype.stages]
        try:
            candidate = replace(
                genotype, stages=tuple(replace(s, out_channels=w) for s, w in zip(stages, widths, strict=True))
            )
        except ValueError:  # the genotype checks refuse this width set (V1 branch widths, V2 split, ...)
            continue
        gap = abs(count_cost(candidate).mflops - target)
        if best is None or gap < best[0]:
            best = (gap, candidate)
    return None if best is None else best[1]


def _widths(genotype: Genotype) -> str:
    return "/".join(str(stage.out_channels) for stage in genotype.stages)


def probes_for(name: str, genotype: Genotype) -> list[Probe]:
    """The one-dimension changes of a base model, in table order (V2-only probes only for V2 models)."""
    g = genotype
    v2 = all(stage.unit == "v2" for stage in g.stages)
    v1 = all(stage.unit == "v1" for stage in g.stages)
    found: list[Probe] = []

    def add(label: str, make: Any) -> None:
        try:
            changed = make()
        except ValueError as error:  # a probe the genotype checks refuse: say so instead of dropping it silently
            print(f"  skipped {label}: {error}", file=sys.stderr)
            return
        if changed is not None and changed != g:
            found.append(Probe(label, changed))

    for stem in (g.stem_channels // 2, g.stem_channels * 2):
        add(f"stem {g.stem_channels}->{stem}", lambda stem=stem: replace(g, stem_channels=stem))
    if v2:
        for ratio in (0.25, 0.75):
            add(f"split {ratio:g} all", lambda ratio=ratio: all_stages(g, split_ratio=ratio))
        if g.head_channels:
            for head in (g.head_channels // 2, g.head_channels * 3 // 2):
                add(f"head {g.head_channels}->{head}", lambda head=head: replace(g, head_channels=head))
    for delta in (1, -1):
        deeper = rescaled_depth(g, delta)
        if deeper is not None:
            add(f"depth {delta:+d}/stage c{_widths(deeper)}", lambda deeper=deeper: deeper)
    add("SE all", lambda: all_stages(g, se=True))
    residual = not all(stage.residual for stage in g.stages)
    add(f"residual {'on' if residual else 'off'} all", lambda: all_stages(g, residual=residual))
    for kernel in (5, 7):
        add(f"kernel {kernel} all", lambda kernel=kernel: all_stages(g, kernel=kernel))
    if v2 or (v1 and all(stage.groups > 1 for stage in g.stages)):
        add("shuffle off all", lambda: all_stages(g, shuffle=False))
    for reference in WIDTH_REFERENCES.get(name, ()):
        other = BASELINES[reference].genotype.with_resolution(g.resolution)
        found.append(Probe(f"ref {reference.removeprefix('shufflenet_')}", other, reference=True))
    return found


def paper_delta_top1(base: Genotype, probe: Genotype) -> float | None:
    """Paper top-1 gain of ``probe`` over ``base`` (points) when both are paper models (matched at 224 px)."""
    errors = {
        b.genotype.arch_id: b.paper_top1_error
        for b in BASELINES.values()
        if b.paper_top1_error is not None and b.genotype.resolution == 224
    }
    base_error = errors.get(base.with_resolution(224).arch_id)
    probe_error = errors.get(probe.with_resolution(224).arch_id)
    return None if base_error is None or probe_error is None else base_error - probe_error


# ---- scoring -------------------------------------------------------------------------------------------
def score(genotype: Genotype, proxies: Sequence[str], seed: int) -> dict[str, float]:
    return {name: s.value for name, s in compute_proxies(genotype, proxies, seed=seed).items()}


def run_model(
    name: str, resolution: int, proxies: Sequence[str], seeds: Sequence[int], all_seeds: bool
) -> dict[str, Any]:
    """Scores of the base at every seed and of each probe at the first (or every) seed, with the deltas."""
    base = BASELINES[name].genotype.with_resolution(resolution)
    base_cost = count_cost(base)
    start = time.perf_counter()
    base_scores = {seed: score(base, proxies, seed) for seed in seeds}
    print(f"{name}: base at seeds {list(seeds)} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    spread = {p: max(base_scores[s][p] for s in seeds) - min(base_scores[s][p] for s in seeds) for p in proxies}
    probe_seeds = list(seeds) if all_seeds else [seeds[0]]
    rows = []
    for probe in probes_for(name, base):
        start = time.perf_counter()
        scores = {seed: score(probe.genotype, proxies, seed) for seed in probe_seeds}
        seconds = time.perf_counter() - start
        cost = count_cost(probe.genotype)
        d_mflops = cost.mflops - base_cost.mflops
        delta = {p: sum(scores[s][p] - base_scores[s][p] for s in probe_seeds) / len(probe_seeds) for p in proxies}
        sloped = abs(d_mflops) >= MIN_SLOPE_SHARE * base_cost.mflops
        slope = {p: delta[p] / d_mflops if sloped else None for p in proxies}
        in_spread = {p: delta[p] / spread[p] if spread[p] > 0 else None for p in proxies}
        rows.append(
            {
                "probe": probe.label,
                "reference": probe.reference,
                "genotype": probe.genotype.to_string(),
                "d_mflops": d_mflops,
                "d_params": cost.params - base_cost.params,
                "paper_d_top1": paper_delta_top1(base, probe.genotype),
                "scores": {str(seed): values for seed, values in scores.items()},
                "delta": delta,
                "delta_per_mflop": slope,
                "delta_in_spreads": in_spread,
                "slope_vs_widening": {},
                "seconds": seconds,
            }
        )
        print(f"  {probe.label}: {seconds:.1f} s", file=sys.stderr)
    widening = next((row for row in reversed(rows) if row["reference"] and row["d_mflops"] > 0), None)
    for row in rows:
        for p in proxies:
            reference = None if widening is None else widening["delta_per_mflop"][p]
            slope = row["delta_per_mflop"][p]
            usable = slope is not None and reference is not None and reference != 0
            row["slope_vs_widening"][p] = slope / reference if usable else None
    return {
        "model": name,
        "genotype": base.to_string(),
        "widening_reference": None if widening is None else widening["probe"],
        "mflops": base_cost.mflops,
        "params": base_cost.params,
        "base_scores": {str(seed): values for seed, values in base_scores.items()},
        "seed_spread": spread,
        "probes": rows,
    }


# ---- printing ------------------------------------------------------------------------------------------
def _num(value: float | None, width: int = 10) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if value == 0:
        return f"{'0':>{width}}"
    text = f"{value:+.3g}" if abs(value) >= 1e-3 and abs(value) < 1e5 else f"{value:+.2e}"
    return f"{text:>{width}}"


_SHORT = {"naswot_diversity": "naswot_div", "relu_count": "relu_cnt"}


def print_model(result: dict[str, Any], proxies: Sequence[str], seeds: Sequence[int], all_seeds: bool) -> None:
    first = str(seeds[0])
    head = f"{'probe':34s}{'dMFLOPs':>9s}{'dparams':>10s}{'paper':>7s}" + "".join(
        f"{_SHORT.get(p, p):>11s}" for p in proxies
    )
    rule = "-" * len(head)
    paired = f"mean over seeds {list(seeds)}" if all_seeds else f"seed {first}"
    print(
        f"\n== {result['model']}: {result['mflops']:.1f} MFLOPs, {result['params'] / 1e6:.3f}M params "
        f"({result['genotype']})"
    )
    print(f"base (seed {first})".ljust(60) + "".join(_num(result["base_scores"][first][p], 11) for p in proxies))
    print(
        f"seed spread (max-min, seeds {','.join(map(str, seeds))})".ljust(60)
        + "".join(
            _num(result["seed_spread"][p], 11) if result["seed_spread"][p] else f"{'exact':>11s}" for p in proxies
        )
    )
    tables = (
        ("delta", f"Δscore = probe - base ({paired}); paper: Δtop-1 points (+: more accurate)"),
        ("delta_per_mflop", f"Δscore per added MFLOP (rows with |ΔMFLOPs| >= {MIN_SLOPE_SHARE:.0%} of the base only)"),
        (
            "slope_vs_widening",
            f"per-MFLOP slope / the slope of {result['widening_reference']} (> 1: the proxy pays more per MFLOP "
            "for this change than for uniform widening)",
        ),
        ("delta_in_spreads", "Δscore / base seed spread (|x| < 1: within seed noise)"),
    )
    for key, title in tables:
        print(f"\n{title}\n{head}\n{rule}")
        for row in result["probes"]:
            paper = row["paper_d_top1"]
            print(
                f"{row['probe']:34s}{row['d_mflops']:+9.1f}{row['d_params'] / 1e3:+9.0f}k"
                + (f"{paper:+7.1f}" if paper is not None else f"{'':7s}")
                + "".join(_num(row[key][p], 11) for p in proxies)
            )


def parse_seeds(text: str) -> list[int]:
    seeds = list(dict.fromkeys(int(part) for part in text.split(",") if part.strip()))
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--seeds", type=parse_seeds, default=[0, 1, 2], help="comma-separated; first: the probes'")
    parser.add_argument("--proxies", type=parse_proxy_names, default=DEFAULT_PROXIES, help="comma-separated")
    parser.add_argument(
        "--models",
        type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
        default=list(DEFAULT_MODELS),
        help="comma-separated baseline names",
    )
    parser.add_argument("--all-seeds", action="store_true", help="score every probe at every seed; average Δ")
    parser.add_argument("--json", metavar="FILE", help="also write every score and delta as JSON")
    args = parser.parse_args(argv)
    proxies = [p for p in args.proxies if p != "train"]
    unknown = [p for p in proxies if p not in PROXY_NAMES]
    if unknown or not proxies:
        parser.error(f"--proxies: choose from {', '.join(p for p in PROXY_NAMES if p != 'train')}")
    missing = [m for m in args.models if m not in BASELINES]
    if missing:
        parser.error(f"--models: unknown baseline {', '.join(missing)}")
    print(
        f"proxy gaming probes at {args.resolution} px, batch {DEFAULT_BATCH_SIZE} of seeded noise; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    start = time.perf_counter()
    results = [run_model(m, args.resolution, proxies, args.seeds, args.all_seeds) for m in args.models]
    seconds = time.perf_counter() - start
    for result in results:
        print_model(result, proxies, args.seeds, args.all_seeds)
    print(f"\ntotal {seconds:.0f} s")
    report = {
        "resolution": args.resolution,
        "batch_size": DEFAULT_BATCH_SIZE,
        "seeds": args.seeds,
        "all_seeds": args.all_seeds,
        "proxies": proxies,
        "seconds": seconds,
        "models": results,
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=1)
    return report


if __name__ == "__main__":
    main()
