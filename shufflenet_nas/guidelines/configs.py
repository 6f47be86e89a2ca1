"""The ShuffleNet V2 paper's guideline experiments (its Tables 1-4) as data: rows, channel counts, throughput.

Source: Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design", ECCV 2018
(arXiv 1807.11164), Tables 1-4, as collected in the project's reference notes (paper-tables.md, "ShuffleNet V2
guideline experiments"). Each benchmark network is a stack of ``BLOCKS`` identical building blocks on
``RESOLUTION`` x ``RESOLUTION`` feature maps, at widths x1, x2 and x4 (channel counts times 1, 2, 4). The paper
ran it on a GTX 1080Ti (batches/s at batch 8; the "gpu" width set) and on a Snapdragon 810, one thread
(images/s at batch 1; the "arm" width set, a half to a quarter as wide; Table 4 uses one set for both).

Each ``Guideline.block`` says what its building block is. The paper names the layers, not every detail; the
choices made here, and why:

- No BatchNorm anywhere: Table 1 benchmarks pure 1x1 convs, and BatchNorm folds into the conv at inference.
- G2: the ARM set's c = 180 for g = 8 is not divisible by 8; c is rounded to the nearest multiple of g, ties
  downwards (176: 5.5% fewer FLOPs than g = 1, so the rounding can only make G2 harder to hold).
- G3 (the paper's Table 3 and appendix Fig. 1: fragments are 1x1 convs, the other rows' channels adjusted to the
  1-fragment's FLOPs): in series, c' = round(c / sqrt(n)); in parallel, the branches' outputs are concatenated
  (Inception-style), each c -> c / n, exactly the 1-fragment's FLOPs.
- G4: c is the bottleneck's input / output width, its inner width c / 4. Reading c as the inner width (in / out
  4c = 128 at x1) would give 546 MFLOPs, 8.5x the 64 MFLOPs of G1's ARM x1 rows, against the paper's 56.7 vs
  76.2 images/s; c / 4 gives 34 MFLOPs plus the 3x3 conv and element-wise kernels.

Equal FLOPs: the paper holds FLOPs fixed across the rows of Tables 1-3. Its own G1 channel counts are only
about equal (GPU 1:12, 36 x 432, has 5.1% fewer multiply-adds than 1:1, 128 x 128; ARM 1:2, 22 x 44, 5.5% fewer
than 32 x 32); G2 and G3 match within 1.2% except the ARM x1 g = 8 rounding above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from shufflenet_nas.errors import InvalidArgumentError

BLOCKS = 10  # building blocks per benchmark network
RESOLUTION = 56  # feature-map height = width
WIDTHS: tuple[int, ...] = (1, 2, 4)  # the paper's x1 / x2 / x4: channel counts times these
QUICK_WIDTHS: tuple[int, ...] = (1,)  # a quick run: x1 alone
WIDTH_SETS: tuple[str, ...] = ("gpu", "arm")
# Interleaved rounds per table and forwards per row per round: compare's defaults (10 rounds hold a ratio within
# about 4%, docs/benchmarks.md).
ROUNDS, RUNS = 10, 5
SOURCE = "ShuffleNet V2 (Ma et al., ECCV 2018, arXiv 1807.11164)"
KINDS: tuple[str, ...] = ("pair", "group", "series", "parallel", "bottleneck")
Throughput = tuple[float, float, float]  # the paper's, at x1, x2, x4


@dataclass(frozen=True)
class PaperSetup:
    """How the paper measured one width set: its device, batch and throughput unit."""

    width_set: str
    device: str
    batch: int
    unit: str  # of the paper's throughput column: "batches/s" (of ``batch`` images) or "images/s"


PAPER_SETUPS: dict[str, PaperSetup] = {
    "gpu": PaperSetup("gpu", "GTX 1080Ti", 8, "batches/s"),
    "arm": PaperSetup("arm", "Snapdragon 810, 1 thread", 1, "images/s"),
}
# A CPU (PyTorch eager or ONNX Runtime, one thread by default) is compared with the paper's ARM protocol, its
# nearest like: a CPU core at batch 1, images/s, on the ARM width set. A GPU is compared with the paper's GTX
# 1080Ti protocol: batch 8, batches/s, on the GPU width set (the ARM set's narrow layers at batch 1 would leave
# a GPU idle, which is not what the paper measured there).
TARGET_WIDTH_SET: dict[str, str] = {"cpu": "arm", "onnxruntime": "arm", "gpu": "gpu"}


def paper_setup(target: str) -> PaperSetup:
    """The paper's protocol a measurement on ``target`` is compared with (width set, batch, unit)."""
    if target not in TARGET_WIDTH_SET:
        raise InvalidArgumentError(f"target={target!r} unknown; use one of {', '.join(TARGET_WIDTH_SET)}")
    return PAPER_SETUPS[TARGET_WIDTH_SET[target]]


@dataclass(frozen=True)
class BlockSpec:
    """One building block at one width, channels resolved: what ``blocks.build_stack`` builds and
    ``cost.stack_cost`` counts.

    ``channels`` is the block's input and output width; ``inner`` is c2 (pair), the fragment width
    (series: = channels; parallel: each branch's output), the bottleneck width (bottleneck) or = channels (group).
    """

    kind: str
    channels: int
    inner: int
    groups: int = 1
    fragments: int = 1
    relu: bool = False
    shortcut: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgumentError(f"kind={self.kind!r} unknown; use one of {', '.join(KINDS)}")
        if min(self.channels, self.inner, self.groups, self.fragments) < 1:
            raise InvalidArgumentError(f"{self}: channels, inner, groups and fragments must be at least 1")
        if self.channels % self.groups:
            raise InvalidArgumentError(f"channels={self.channels} not divisible by groups={self.groups}")
        if self.kind == "parallel" and self.inner * self.fragments != self.channels:
            raise InvalidArgumentError(
                f"channels={self.channels}: {self.fragments} parallel fragments of {self.inner} do not concatenate "
                "back to it"
            )

    def describe(self) -> str:
        """The channel counts as the paper's tables write them."""
        if self.kind == "pair":
            return f"c1={self.channels}, c2={self.inner}"
        if self.kind == "group":
            return f"c={self.channels}, g={self.groups}"
        if self.kind == "series":
            return f"c={self.channels}" if self.fragments == 1 else f"{self.fragments} x (c={self.channels})"
        if self.kind == "parallel":
            return f"c={self.channels} = {self.fragments} x {self.inner}"
        return f"c={self.channels}, inner {self.inner}"


@dataclass(frozen=True)
class Row:
    """One row of a guideline table: its block at x1 per width set, and the paper's throughput per width set
    (x1, x2, x4, in that set's ``PaperSetup.unit``)."""

    label: str
    kind: str
    c: Mapping[str, int]  # per width set at x1: c1 (pair) or c (the 1-fragment's c for G3)
    paper: Mapping[str, Throughput]
    c2: Mapping[str, int] | None = None  # pair only
    groups: int = 1
    fragments: int = 1
    relu: bool = False
    shortcut: bool = False

    def block(self, width_set: str, width: int) -> BlockSpec:
        """The block at ``width`` (the paper's 1, 2, 4: channel counts times it) in ``width_set`` ("gpu" or "arm")."""
        if width_set not in WIDTH_SETS:
            raise InvalidArgumentError(f"width_set={width_set!r} unknown; use one of {', '.join(WIDTH_SETS)}")
        c = self.c[width_set] * width
        if self.kind == "pair":
            assert self.c2 is not None
            return BlockSpec("pair", c, self.c2[width_set] * width)
        if self.kind == "group":
            multiple = math.ceil(c / self.groups - 0.5) * self.groups  # the nearest multiple, ties down
            return BlockSpec("group", multiple, multiple, groups=self.groups)
        if self.kind == "series":
            fragment_c = round(c / math.sqrt(self.fragments))
            return BlockSpec("series", fragment_c, fragment_c, fragments=self.fragments)
        if self.kind == "parallel":
            return BlockSpec("parallel", c, c // self.fragments, fragments=self.fragments)
        return BlockSpec("bottleneck", c, c // 4, relu=self.relu, shortcut=self.shortcut)


@dataclass(frozen=True)
class Guideline:
    """A guideline and its validation table: the rows, and the two rows whose time ratio decides it (the
    guideline says ``faster`` runs faster than ``slower``)."""

    key: str
    claim: str
    table: str
    block: str  # what its building block is, in a line
    rows: tuple[Row, ...]
    faster: str
    slower: str

    @property
    def source(self) -> str:
        return f"{SOURCE}, {self.table}"

    def row(self, label: str) -> Row:
        return next(row for row in self.rows if row.label == label)

    def index(self, label: str) -> int:
        return [row.label for row in self.rows].index(label)


def _pair(label: str, gpu: tuple[int, int], arm: tuple[int, int], paper_gpu: Throughput, paper_arm: Throughput) -> Row:
    c1, c2 = {"gpu": gpu[0], "arm": arm[0]}, {"gpu": gpu[1], "arm": arm[1]}
    return Row(label, "pair", c1, {"gpu": paper_gpu, "arm": paper_arm}, c2)


G1 = Guideline(
    "G1",
    "equal channel widths minimise memory access cost",
    "Table 1",
    "two 1x1 convs c1 -> c2 -> c1, no BatchNorm, ReLU or bias",
    (
        _pair("1:1", (128, 128), (32, 32), (1480, 723, 232), (76.2, 21.7, 5.3)),
        _pair("1:2", (90, 180), (22, 44), (1296, 586, 206), (72.9, 20.5, 5.1)),
        _pair("1:6", (52, 312), (13, 78), (876, 489, 189), (69.1, 17.9, 4.6)),
        _pair("1:12", (36, 432), (9, 108), (748, 392, 163), (57.6, 15.1, 4.4)),
    ),
    faster="1:1",
    slower="1:12",
)
G2 = Guideline(
    "G2",
    "excessive group convolution increases memory access cost",
    "Table 2",
    "one 1x1 group conv c -> c with g groups, no BatchNorm, ReLU or shuffle; c rounded to a multiple of g "
    "(ARM x1, g=8: 176 for the paper's 180)",
    tuple(
        Row(f"g={g}", "group", {"gpu": gpu, "arm": arm}, {"gpu": paper_gpu, "arm": paper_arm}, groups=g)
        for g, gpu, arm, paper_gpu, paper_arm in (
            (1, 128, 64, (2451, 1289, 437), (40.0, 10.2, 2.3)),
            (2, 180, 90, (1725, 873, 341), (35.0, 9.5, 2.2)),
            (4, 256, 128, (1026, 644, 338), (32.9, 8.7, 2.1)),
            (8, 360, 180, (634, 445, 230), (27.8, 7.5, 1.8)),
        )
    ),
    faster="g=1",
    slower="g=8",
)
_G3_C = {"gpu": 128, "arm": 64}  # the 1-fragment's c at x1; the other rows' widths follow from it
G3 = Guideline(
    "G3",
    "network fragmentation reduces the degree of parallelism",
    "Table 3",
    "1x1 convs: n in series, each c' -> c' with c' = round(c / sqrt(n)), or n in parallel on the same input, "
    "each c -> c/n, concatenated (the 1-fragment's FLOPs)",
    tuple(
        Row(label, kind, _G3_C, {"gpu": paper_gpu, "arm": paper_arm}, fragments=n)
        for label, kind, n, paper_gpu, paper_arm in (
            ("1-fragment", "series", 1, (2446, 1274, 434), (40.2, 10.1, 2.3)),
            ("2-fragment-series", "series", 2, (1790, 909, 336), (38.6, 10.1, 2.2)),
            ("4-fragment-series", "series", 4, (752, 745, 349), (38.4, 10.1, 2.3)),
            ("2-fragment-parallel", "parallel", 2, (1537, 803, 320), (33.4, 9.1, 2.2)),
            ("4-fragment-parallel", "parallel", 4, (691, 572, 292), (35.0, 8.4, 2.1)),
        )
    ),
    faster="1-fragment",
    slower="4-fragment-parallel",
)
_G4_C = {"gpu": 32, "arm": 32}  # Table 4 uses one width set for both devices
G4 = Guideline(
    "G4",
    "element-wise operations are not negligible",
    "Table 4",
    "ResNet bottleneck c -> c/4 (1x1) -> c/4 (3x3) -> c (1x1), no BatchNorm; ReLU after the first two convs "
    "and after the addition; identity shortcut",
    tuple(
        Row(label, "bottleneck", _G4_C, {"gpu": paper_gpu, "arm": paper_arm}, relu=relu, shortcut=shortcut)
        for label, relu, shortcut, paper_gpu, paper_arm in (
            ("ReLU+shortcut", True, True, (2427, 2066, 1436), (56.7, 16.9, 5.0)),
            ("ReLU only", True, False, (2647, 2256, 1735), (61.9, 18.8, 5.2)),
            ("shortcut only", False, True, (2672, 2121, 1458), (57.3, 18.2, 5.1)),
            ("neither", False, False, (2842, 2376, 1782), (66.3, 20.2, 5.4)),
        )
    ),
    faster="neither",
    slower="ReLU+shortcut",
)
GUIDELINES: tuple[Guideline, ...] = (G1, G2, G3, G4)
