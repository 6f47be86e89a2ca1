"""An architecture in the terms of ShuffleNet V2's four guidelines (Ma et al., ECCV 2018, Sec. 2), per stage.

Counted from the symbolic replay of each part's kernels (``symbolic_cost.replay_kernels``; no torch):

- G1, equal channel widths minimise memory access (MAC): each 1x1 conv's balance ``max(c1, c2) / min(c1, c2)``
  (worst and mean) and the MAC of the 1x1 convs over their balanced lower bound. For a 1x1 conv on h x w with
  FLOPs B and g groups, MAC = hw(c1 + c2) + c1*c2/g >= 2*sqrt(g*hw*B) + B/hw, with equality at c1 = c2 (the
  paper's bound, g = 1, taken at the conv's own group count so that grouping is left to G2).
- G2, group convolution increases MAC: the group counts of the 1x1 convs and the share of memory access in the
  grouped ones (depthwise convs are not counted: both families have them).
- G3, fragmentation reduces parallelism: fragments, the paper's "individual convolution or pooling operations
  in one building block" (conv, pool and linear kernels; squeeze-excite adds three), branches (the parallel paths
  from a part's input to its output: a V1 unit's branch and shortcut, a V2 unit's two branches, squeeze-excite's
  gate) and operators (kernels launched per forward).
- G4, element-wise operations are not negligible: the share of memory access and of operators in element-wise
  kernels (``ELEMENTWISE``: BatchNorm, unfused in eager PyTorch, ReLU, add, concat, the channel shuffle's copy,
  squeeze-excite's sigmoid and multiply).

``measured_elementwise_share`` measures G4 on the CPU: ``torch.profiler``'s CPU time per aten operator of the
forward, each operator with what it calls (a conv's internal copies count as conv), as a share of the time spent
in operators. ``compare_to_reference`` says per guideline which of two networks follows it better.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.nas.symbolic_cost import ConvShape, Kernel, replay_kernels
from shufflenet_nas.search_spaces.baselines import BASELINES
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.plan import PartSpec, UnitSpec, network_plan

if TYPE_CHECKING:
    from torch import nn

    from shufflenet_nas.nas.latency import MeasureConfig

REFERENCE = "shufflenet_v2_x1_0"  # the network every architecture is held against
ELEMENTWISE: frozenset[str] = frozenset({"batch_norm", "relu", "shuffle", "add", "cat", "sigmoid", "mul"})
# The columns of ``GuidelineFigures.cells``, for tables, and what they mean.
GUIDELINE_COLUMNS: tuple[str, ...] = (
    "G1 c1:c2",
    "G1 excess",
    "G2 groups",
    "G2 MAC",
    "G3 frag/unit",
    "G3 branches",
    "G3 ops",
    "G4 MAC",
    "G4 ops",
)
GUIDELINE_LEGEND = (
    "G1 c1:c2: mean/worst max(c_in, c_out) / min(c_in, c_out) of the 1x1 convs; G1 excess: their memory access "
    "(MAC) over its equal-width lower bound at the same FLOPs; G2 groups: of the 1x1 convs; G2 MAC: share of MAC in "
    "grouped 1x1 convs; G3 frag/unit: conv and pool operators per unit; G3 branches: parallel paths through a unit; "
    "G3 ops: kernels per forward; G4 MAC / ops: share of MAC / of kernels in element-wise operators (BatchNorm, "
    "ReLU, add, concat, shuffle, SE's sigmoid and multiply)"
)
MEASURED_LEGEND = "G4 time: share of the CPU forward's operator time in element-wise operators (torch.profiler)"


@dataclass(frozen=True)
class GuidelineFigures:
    """The counted figures of one section (``stem``, ``stage2`` ..., ``head``) or of the whole ``network``."""

    name: str
    units: int  # ShuffleNet units (0 in the stem and head)
    memory_access: int  # elements read + written by all kernels, weights included (cost.Cost.memory_access)
    operators: int  # kernels per forward
    # G1
    pointwise_convs: int  # 1x1 convs on feature maps (squeeze-excite's are not)
    balance_worst: float | None  # max over them of max(c1, c2) / min(c1, c2); None without any
    balance_mean: float | None
    pointwise_memory_access: int
    balanced_bound: float  # their lower bound at equal widths, same FLOPs and groups
    # G2
    groups: tuple[int, ...]  # the 1x1 convs' group counts
    group_conv_memory_access: int  # of the 1x1 convs with more than one group
    # G3
    fragments: int  # conv, pool and linear kernels
    unit_fragments: int  # those of the units alone
    branches: int  # most parallel paths through one part
    # G4
    elementwise_memory_access: int
    elementwise_operators: int
    memory_access_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def balance_excess(self) -> float:
        """The 1x1 convs' memory access over their balanced bound, as a fraction of it (0: all balanced)."""
        return self.pointwise_memory_access / self.balanced_bound - 1 if self.balanced_bound else 0.0

    @property
    def group_share(self) -> float:
        """Share of the memory access in grouped 1x1 convs."""
        return self.group_conv_memory_access / self.memory_access

    @property
    def fragments_per_unit(self) -> float | None:
        return self.unit_fragments / self.units if self.units else None

    @property
    def elementwise_share(self) -> float:
        """Share of the memory access in element-wise kernels."""
        return self.elementwise_memory_access / self.memory_access

    @property
    def elementwise_operator_share(self) -> float:
        return self.elementwise_operators / self.operators

    def cells(self) -> tuple[str, ...]:
        """The figures as ``GUIDELINE_COLUMNS`` show them."""
        pointwise = self.balance_mean is not None and self.balance_worst is not None
        per_unit = self.fragments_per_unit
        return (
            f"{self.balance_mean:.2f}/{self.balance_worst:.2f}" if pointwise else "-",
            f"{self.balance_excess:.1%}" if pointwise else "-",
            "/".join(map(str, self.groups)) or "-",
            f"{self.group_share:.1%}",
            "-" if per_unit is None else f"{per_unit:.2f}",
            str(self.branches),
            str(self.operators),
            f"{self.elementwise_share:.1%}",
            f"{self.elementwise_operator_share:.0%}",
        )

    def to_dict(self) -> dict[str, Any]:
        derived = (
            "balance_excess",
            "group_share",
            "fragments_per_unit",
            "elementwise_share",
            "elementwise_operator_share",
        )
        return asdict(self) | {
            name: None if (value := getattr(self, name)) is None else round(value, 4) for name in derived
        }


@dataclass(frozen=True)
class Explanation:
    """An architecture's counted guideline figures: per section, in forward order, and for the whole network."""

    arch_id: str
    genotype: str
    sections: tuple[GuidelineFigures, ...]  # stem, stage2 ... stageN, head
    network: GuidelineFigures

    @property
    def stages(self) -> tuple[GuidelineFigures, ...]:
        return self.sections[1:-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch_id": self.arch_id,
            "genotype": self.genotype,
            "network": self.network.to_dict(),
            "sections": [section.to_dict() for section in self.sections],
        }


def explain(genotype: Genotype) -> Explanation:
    """The guideline figures of ``genotype`` per section and in total, from the replay of its kernels."""
    plan = network_plan(genotype)
    groups: list[tuple[str, tuple[PartSpec, ...]]] = [("stem", plan[:1])]
    start = 1
    for number, stage in enumerate(genotype.stages, start=2):
        groups.append((f"stage{number}", plan[start : start + stage.repeats]))
        start += stage.repeats
    groups.append(("head", plan[-1:]))
    sections = tuple(_figures(name, parts) for name, parts in groups)
    return Explanation(genotype.arch_id, genotype.to_string(), sections, _figures("network", plan))


def reference_like(genotype: Genotype) -> Genotype | None:
    """ShuffleNet V2 1.0x (``REFERENCE``) in ``genotype``'s setting: its input size, classes and stem stride; None
    where V2 1.0x cannot take that input (too small for its three stride-2 stages).

    For a searched genotype this is the paper model its search compares it with (the space gives the stem the
    stride ``search_config.baseline_at`` gives the paper models)."""
    try:
        return replace(
            BASELINES[REFERENCE].genotype,
            resolution=genotype.resolution,
            num_classes=genotype.num_classes,
            stem_stride=genotype.stem_stride,
        )
    except ValueError:
        return None


def _figures(name: str, parts: tuple[PartSpec, ...]) -> GuidelineFigures:
    """Add up the guideline figures of ``parts``' kernels."""
    kernels = [kernel for part in parts for kernel in replay_kernels(part)]
    pointwise = [(k, k.conv) for k in kernels if k.kind == "conv" and k.conv is not None and k.conv.kernel == 1]
    ratios = [max(c.in_channels, c.out_channels) / min(c.in_channels, c.out_channels) for _, c in pointwise]
    elementwise = [k for k in kernels if k.kind in ELEMENTWISE]
    by_kind: Counter[str] = Counter()
    for kernel in kernels:
        by_kind[kernel.kind] += kernel.memory_access
    units = [part for part in parts if isinstance(part, UnitSpec)]
    return GuidelineFigures(
        name=name,
        units=len(units),
        memory_access=sum(k.memory_access for k in kernels),
        operators=len(kernels),
        pointwise_convs=len(pointwise),
        balance_worst=max(ratios) if ratios else None,
        balance_mean=statistics.fmean(ratios) if ratios else None,
        pointwise_memory_access=sum(k.memory_access for k, _ in pointwise),
        balanced_bound=sum(_balanced_bound(c) for _, c in pointwise),
        groups=tuple(sorted({c.groups for _, c in pointwise})),
        group_conv_memory_access=sum(k.memory_access for k, c in pointwise if c.groups > 1),
        fragments=len(kernels) - len(elementwise),
        unit_fragments=sum(_fragments(replay_kernels(unit)) for unit in units),
        branches=max(_branches(replay_kernels(part)) for part in parts),
        elementwise_memory_access=sum(k.memory_access for k in elementwise),
        elementwise_operators=len(elementwise),
        memory_access_by_kind=dict(by_kind),
    )


def _balanced_bound(c: ConvShape) -> float:
    """2*sqrt(g*hw*B) + B/hw for a 1x1 conv with FLOPs B = hw*c1*c2/g: its MAC at c1 = c2, same FLOPs and g."""
    hw = c.out_size**2
    flops = hw * c.in_channels * c.out_channels / c.groups
    return 2 * math.sqrt(c.groups * hw * flops) + flops / hw


def _fragments(kernels: tuple[Kernel, ...]) -> int:
    return sum(1 for k in kernels if k.kind not in ELEMENTWISE)


def _branches(kernels: tuple[Kernel, ...]) -> int:
    """Paths from the part's input to its output (the last kernel's): each kernel's output is reached by the
    sum of its inputs' paths; a tensor no kernel wrote is the input (its views included)."""
    paths: dict[int, int] = {}
    for kernel in kernels:
        reached = sum(paths.get(tensor, 1) for tensor in kernel.inputs)
        paths.update((tensor, reached) for tensor in kernel.outputs)
    return paths[kernels[-1].outputs[0]]


# ---- against a reference -------------------------------------------------------------------------------------
NEAR = {"%": 1.0, "": 5.0}  # differences (points of a share, per cent of a count) too small to call either way


@dataclass(frozen=True)
class GuidelineVerdict:
    """One guideline's measure for a network and for the reference (lower follows the guideline better).

    ``unit`` is ``%`` for a share (compared in points) and ``""`` for a count (compared relatively). Within
    ``NEAR`` of the reference (1 point, or 5% of a count) the network follows the guideline as well as it does."""

    guideline: str  # G1 .. G4
    title: str
    measure: str
    value: float
    reference_value: float
    unit: str
    context: str  # figures beside the measure, e.g. the mean c1:c2
    reference_context: str

    @property
    def better(self) -> str:
        """``this``, ``reference`` or ``equal`` (within ``NEAR``)."""
        if abs(self.difference) < NEAR[self.unit]:
            return "equal"
        return "this" if self.value < self.reference_value else "reference"

    @property
    def difference(self) -> float:
        """Points for a share (between the printed values), percent of the reference's value for a count
        (negative: lower than it)."""
        if self.unit == "%":
            return round(self.value, 1) - round(self.reference_value, 1)
        return (self.value / self.reference_value - 1) * 100 if self.reference_value else 0.0

    def _printed(self, value: float) -> str:
        return f"{value:.1f}"

    def text(self, reference: str = "V2 1.0x") -> str:
        """``G1 equal widths: 1x1 MAC 3.1% over the balanced bound (mean c1:c2 1.25, worst 2.42) vs 6.0% (mean
        c1:c2 1.42, worst 4.00): better than V2 1.0x (-2.9 pts)``: lower follows the guideline better."""
        change = f"{self.difference:+.1f} pts" if self.unit == "%" else f"{self.difference:+.1f}%"
        verdict = {
            "equal": f"as {reference} ({change})",
            "this": f"better than {reference} ({change})",
            "reference": f"worse than {reference} ({change})",
        }[self.better]
        value, reference_value = self._printed(self.value), self._printed(self.reference_value)
        return (
            f"{self.guideline} {self.title}: {self.measure.format(value=value + self.unit)} ({self.context}) vs "
            f"{reference_value}{self.unit} ({self.reference_context}): {verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"better": self.better, "difference": round(self.difference, 2)}


def compare_to_reference(explanation: Explanation, reference: Explanation) -> tuple[GuidelineVerdict, ...]:
    """Per guideline, ``explanation``'s network figure beside ``reference``'s: which follows it better, by how
    much. G1: 1x1-conv MAC over the balanced bound; G2: share of MAC in grouped 1x1 convs; G3: conv and pool
    fragments per unit (the paper's fragmentation; operators per forward grow with depth too); G4: share of MAC in
    element-wise kernels."""
    this, other = explanation.network, reference.network

    def balance(f: GuidelineFigures) -> str:
        return f"mean c1:c2 {f.balance_mean or 1:.2f}, worst {f.balance_worst or 1:.2f}"

    def groups(f: GuidelineFigures) -> str:
        return "groups " + "/".join(map(str, f.groups or (1,)))

    def fragments(f: GuidelineFigures) -> str:
        return f"{f.branches} branches per unit, {f.operators} operators per forward"

    def operators(f: GuidelineFigures) -> str:
        return f"{f.elementwise_operator_share:.0%} of operators"

    return (
        GuidelineVerdict(
            "G1",
            "equal widths",
            "1x1 MAC {value} over the balanced bound",
            100 * this.balance_excess,
            100 * other.balance_excess,
            "%",
            balance(this),
            balance(other),
        ),
        GuidelineVerdict(
            "G2",
            "group convs",
            "{value} of MAC in grouped 1x1 convs",
            100 * this.group_share,
            100 * other.group_share,
            "%",
            groups(this),
            groups(other),
        ),
        GuidelineVerdict(
            "G3",
            "fragmentation",
            "{value} fragments per unit",
            this.fragments_per_unit or 0.0,
            other.fragments_per_unit or 0.0,
            "",
            fragments(this),
            fragments(other),
        ),
        GuidelineVerdict(
            "G4",
            "element-wise",
            "{value} of MAC element-wise",
            100 * this.elementwise_share,
            100 * other.elementwise_share,
            "%",
            operators(this),
            operators(other),
        ),
    )


def compare_measured(measured: MeasuredShare, reference: MeasuredShare) -> GuidelineVerdict:
    """G4 as measured: the share of operator time in element-wise operators of two profiled networks."""

    def context(share: MeasuredShare) -> str:
        return f"{share.profiled_ms:.2f} ms per forward profiled"

    return GuidelineVerdict(
        "G4",
        "element-wise, measured",
        "{value} of operator time element-wise",
        100 * measured.elementwise,
        100 * reference.elementwise,
        "%",
        context(measured),
        context(reference),
    )


# ---- measured on the CPU ----------------------------------------------------------------------------------------
# Operators the forward calls (the profiler's top-level aten events), by what they do; any other (views, splits,
# transposes: no data moved) counts as "other".
OPERATOR_CLASSES: dict[str, frozenset[str]] = {
    "conv/linear": frozenset({"aten::conv2d", "aten::convolution", "aten::linear", "aten::addmm", "aten::matmul"}),
    "pool": frozenset({"aten::max_pool2d", "aten::avg_pool2d", "aten::adaptive_avg_pool2d", "aten::mean"}),
    "element-wise": frozenset(
        {
            "aten::batch_norm",
            "aten::relu",
            "aten::relu_",
            "aten::add",
            "aten::add_",
            "aten::cat",
            "aten::reshape",  # the channel shuffle's copy (reshape of a transposed view)
            "aten::contiguous",
            "aten::clone",
            "aten::mul",
            "aten::sigmoid",
        }
    ),
}
MEASURE_WARMUP = 3  # unprofiled forwards before the profiled ones (their median is ``forward_ms``)


@dataclass(frozen=True)
class OperatorTime:
    """One aten operator of the forward: its class, CPU time per forward (with what it calls) and calls."""

    name: str
    kind: str  # a key of OPERATOR_CLASSES or "other"
    ms: float
    share: float
    calls: int


@dataclass(frozen=True)
class MeasuredShare:
    """G4 measured: where a CPU forward's operator time goes, per class of operator and per operator."""

    elementwise: float  # share of the operator time in element-wise operators
    shares: dict[str, float]  # class -> share (conv/linear, pool, element-wise, other)
    operators: tuple[OperatorTime, ...]  # slowest first
    profiled_ms: float  # operator time per forward, profiled
    forward_ms: float  # median unprofiled forward
    runs: int
    provenance: dict[str, Any]

    def text(self, top: int = 4) -> str:
        """``element-wise 31.3% of operator time (conv/linear 64.4%, pool 3.5%, other 0.8%); slowest: conv2d 60.7%,
        ...; 7.95 ms per forward profiled, 8.21 ms unprofiled``."""
        others = ", ".join(f"{kind} {share:.1%}" for kind, share in self.shares.items() if kind != "element-wise")
        slowest = ", ".join(f"{op.name.removeprefix('aten::')} {op.share:.1%}" for op in self.operators[:top])
        return (
            f"element-wise {self.elementwise:.1%} of operator time ({others}); slowest: {slowest}; "
            f"{self.profiled_ms:.2f} ms per forward profiled, {self.forward_ms:.2f} ms unprofiled"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measured_elementwise_share(genotype: Genotype, config: MeasureConfig, runs: int = 10) -> MeasuredShare:
    """Profile ``runs`` forwards of ``genotype`` (fixed weights, batch 1) on the CPU with ``config``'s threads and
    dtype, channels-last as the latency measurement runs it (see ``profile_operators``)."""
    from shufflenet_nas.nas.cost import check_fits_in_memory
    from shufflenet_nas.nas.latency import seeded
    from shufflenet_nas.search_spaces.builder import build

    _check_profiled(config, runs)
    check_fits_in_memory(genotype)
    module = seeded(lambda: build(genotype))
    measured = profile_operators(module, (3, genotype.resolution, genotype.resolution), config, runs)
    return replace(measured, provenance=measured.provenance | {"arch_id": genotype.arch_id})


def profile_operators(
    module: nn.Module, input_shape: tuple[int, int, int], config: MeasureConfig, runs: int = 10
) -> MeasuredShare:
    """Time ``runs`` forwards of ``module`` at batch 1 under ``torch.profiler`` (CPU activity) after
    ``MEASURE_WARMUP`` unprofiled ones, prepared by the latency engine's ``timed_forward``. Each operator the
    forward calls is charged its CPU time with what it calls and classed by ``OPERATOR_CLASSES``. The profiler's
    own overhead, a few microseconds per operator, weighs most on small operators: compare ``profiled_ms`` with
    ``forward_ms``."""
    from torch.profiler import ProfilerActivity, profile

    from shufflenet_nas.nas.latency import software_provenance, timed_forward

    _check_profiled(config, runs)
    config = replace(config, batch=1)
    with timed_forward(module, input_shape, config) as (step, _):
        forward_ms = statistics.median(step() for _ in range(MEASURE_WARMUP))
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            for _ in range(runs):
                step()
    times: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for event in profiler.events():
        if event.cpu_parent is None and event.name.startswith("aten::"):
            times[event.name] += event.cpu_time_total  # microseconds, with its children
            calls[event.name] += 1
    total = sum(times.values())
    if not total:
        raise InvalidArgumentError("module: the profiler saw no aten operator in its forward")
    operators = tuple(
        OperatorTime(name, _operator_class(name), us / runs / 1000, us / total, calls[name] // runs)
        for name, us in times.most_common()
    )
    shares = {kind: 0.0 for kind in (*OPERATOR_CLASSES, "other")}
    for operator in operators:
        shares[operator.kind] += operator.share
    provenance = software_provenance(config) | {"resolution": input_shape[1], "runs": runs, "profiler": "torch"}
    provenance.pop("normalized")
    return MeasuredShare(shares["element-wise"], shares, operators, total / runs / 1000, forward_ms, runs, provenance)


def _check_profiled(config: MeasureConfig, runs: int) -> None:
    if config.target != "cpu":
        raise InvalidArgumentError(
            f"target={config.target!r}: the element-wise time share is measured with torch.profiler on "
            "target='cpu' only"
        )
    if runs < 1:
        raise InvalidArgumentError(f"runs={runs}: need at least 1")


def _operator_class(name: str) -> str:
    return next((kind for kind, names in OPERATOR_CLASSES.items() if name in names), "other")
