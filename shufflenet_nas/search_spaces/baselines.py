"""The papers' models as named genotypes, with the papers' numbers and where they come from.

Sources (see shared/reference/paper-tables.md):
- V1: Zhang et al., "ShuffleNet", CVPR 2018, arXiv 1707.01083 -- Table 1 (architecture, complexity at 1x),
  Table 2 (top-1 error per width and group count), Table 3 (the same models without channel shuffle),
  Table 5 (larger and SE models).
- V2: Ma et al., "ShuffleNet V2", ECCV 2018, arXiv 1807.11164 -- Table 5 (architecture), Table 8 (MFLOPs,
  top-1 error). Parameter counts: torchvision's shufflenet_v2 weights metadata; megvii-model/ShuffleNet-Series.
"""

from __future__ import annotations

from dataclasses import dataclass

from shufflenet_nas.search_spaces.genotype import Genotype, StageGene

V1_REPEATS = (4, 8, 4)  # V1 Table 1: one stride-2 unit + 3 / 7 / 3 stride-1 units
V2_REPEATS = (4, 8, 4)  # V2 Table 5: the same stage depths


@dataclass(frozen=True)
class Baseline:
    """A paper model: its genotype and the published figures (None where the paper gives none)."""

    name: str
    genotype: Genotype
    paper_mflops: float | None
    paper_top1_error: float | None
    reference_params: int | None
    source: str
    # "paper" (the default form of the model), "official" (megvii code's V2 stride-2 unit) or "ablation" (a
    # paper's variant for a study, e.g. V1 Table 3 without shuffle: not a model to seed a search with)
    variant: str


# V1 Table 1 stage-2 widths at 1x per group count; stages 3 and 4 double.
_V1_WIDTH_1X = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
# V1 Table 1 complexity (MFLOPs) at 1x and Table 2 top-1 error per width multiplier.
_V1_MFLOPS_1X = {1: 143, 2: 140, 3: 137, 4: 133, 8: 137}
_V1_TABLE2_ERROR = {
    1.0: {1: 33.6, 2: 32.7, 3: 32.6, 4: 32.8, 8: 32.4},
    0.5: {1: 45.1, 2: 44.4, 3: 43.2, 4: 41.6, 8: 42.3},
    0.25: {1: 57.1, 2: 56.8, 3: 55.0, 4: 54.2, 8: 52.7},
}
_V1_TABLE2_MFLOPS = {1.0: None, 0.5: 38, 0.25: 13}
# V1 Table 3: top-1 error of the g3 and g8 models without channel shuffle.
_V1_TABLE3_ERROR = {1.0: {3: 34.5, 8: 37.6}, 0.5: {3: 45.7, 8: 48.1}, 0.25: {3: 56.3, 8: 56.5}}


def v1_stem(groups: int, scale: float) -> int:
    """V1 stem width. The official code scales the stem with the model: 24 at 1x and 1.5x, 48 at 2x,
    12 at 0.5x g3. Below 1x we use 12, except 8 for g8: 12 would leave a stride-2 branch (out - 12)
    not divisible by 8, and 8 lands nearer the paper's 38M/13M levels than the official code's 16
    (40.5M at 0.5x, +6.5%)."""
    if scale >= 2:
        return 48
    if scale >= 1:
        return 24
    return 8 if groups == 8 else 12


# megvii-model/ShuffleNet-Series parameter counts of the official V1 models.
_V1_OFFICIAL_PARAMS = {(3, 0.5): 717_000, (3, 1.0): 1_865_000, (3, 1.5): 3_441_000, (3, 2.0): 5_450_000}


def _suffix(scale: float) -> str:
    return f"x{scale:.2f}".rstrip("0").replace(".", "_") if scale == 0.25 else f"x{scale:.1f}".replace(".", "_")


def v1_genotype(groups: int, scale: float, se: bool = False, shuffle: bool = True) -> Genotype:
    """ShuffleNet V1 (Table 1) with ``groups`` and a width multiplier; ``shuffle=False``: Table 3's ablation."""
    width = round(_V1_WIDTH_1X[groups] * scale)
    stages = tuple(
        StageGene("v1", repeats, width * 2**i, groups=groups, se=se, residual=True, shuffle=shuffle)
        for i, repeats in enumerate(V1_REPEATS)
    )
    return Genotype(v1_stem(groups, scale), stages, head_channels=0, fc_bias=False)


# V2 Table 5 widths; Table 8 MFLOPs and top-1 error; torchvision parameter counts.
_V2 = {
    0.5: ((48, 96, 192), 1024, 41, 39.7, 1_366_792),
    1.0: ((116, 232, 464), 1024, 146, 30.6, 2_278_604),
    1.5: ((176, 352, 704), 1024, 299, 27.4, 3_503_624),
    2.0: ((244, 488, 976), 2048, 591, 25.1, 7_393_996),
}
_V2_OFFICIAL_PARAMS = {1.0: 2_278_760}


def v2_genotype(scale: float, downsample: str = "tv", se: bool = False) -> Genotype:
    """ShuffleNet V2 (Table 5) at a width multiplier; ``downsample`` picks the stride-2 variant."""
    widths, head, *_ = _V2[scale]
    stages = tuple(StageGene("v2", n, c, se=se) for n, c in zip(V2_REPEATS, widths, strict=True))
    return Genotype(24, stages, head_channels=head, downsample=downsample, fc_bias=downsample == "tv")  # type: ignore[arg-type]


def _build_registry() -> dict[str, Baseline]:
    registry: list[Baseline] = []
    for scale in (0.25, 0.5, 1.0):
        for groups in (1, 2, 3, 4, 8):
            mflops = _V1_MFLOPS_1X[groups] if scale == 1.0 else _V1_TABLE2_MFLOPS[scale]
            source = "V1 Table 1 (MFLOPs), Table 2 (error)" if scale == 1.0 else "V1 Table 2 (level, error)"
            registry.append(
                Baseline(
                    f"shufflenet_v1_g{groups}_{_suffix(scale)}",
                    v1_genotype(groups, scale),
                    mflops,
                    _V1_TABLE2_ERROR[scale][groups],
                    _V1_OFFICIAL_PARAMS.get((groups, scale)),
                    source,
                    "paper",
                )
            )
    registry += [
        Baseline("shufflenet_v1_g3_x1_5", v1_genotype(3, 1.5), 292, 28.5, 3_441_000, "V1 Table 5", "paper"),
        Baseline("shufflenet_v1_g3_x2_0", v1_genotype(3, 2.0), 524, 26.3, 5_450_000, "V1 Table 5", "paper"),
        Baseline("shufflenet_v1_g3_x2_0_se", v1_genotype(3, 2.0, se=True), 527, 24.7, None, "V1 Table 5", "paper"),
    ]
    with_shuffle = {baseline.name: baseline for baseline in registry}
    for scale, errors in _V1_TABLE3_ERROR.items():
        for groups, error in errors.items():
            twin = with_shuffle[f"shufflenet_v1_g{groups}_{_suffix(scale)}"]
            registry.append(
                Baseline(
                    f"{twin.name}_noshuffle",
                    v1_genotype(groups, scale, shuffle=False),
                    twin.paper_mflops,
                    error,
                    twin.reference_params,
                    "V1 Table 3 (error); MFLOPs as with shuffle",
                    "ablation",
                )
            )
    for scale, (_, _, mflops, error, params) in _V2.items():
        name = f"shufflenet_v2_{_suffix(scale)}"
        registry.append(Baseline(name, v2_genotype(scale), mflops, error, params, "V2 Table 8", "paper"))
        registry.append(
            Baseline(
                f"{name}_official",
                v2_genotype(scale, "official"),
                mflops,
                error,
                _V2_OFFICIAL_PARAMS.get(scale),
                "V2 Table 8; megvii stride-2 unit",
                "official",
            )
        )
    registry.append(
        Baseline(
            "shufflenet_v2_x2_0_se",
            v2_genotype(2.0, "official", se=True),
            597,
            24.6,
            None,
            "V2 Table 8; megvii stride-2 unit",
            "paper",
        )
    )
    return {baseline.name: baseline for baseline in registry}


BASELINES: dict[str, Baseline] = _build_registry()


def get_baseline(name: str) -> Baseline:
    """The named baseline; ``ValueError`` lists the names when it is unknown."""
    try:
        return BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; the names are the keys of BASELINES") from None
