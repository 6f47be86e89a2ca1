"""A part's cost from its spec alone: the kernels its forward runs, replayed on shapes (microseconds, no torch).

Each part type has a symbolic forward that mirrors its module's ``forward`` (``search_spaces.blocks``,
``builder``) kernel by kernel: conv, BatchNorm, ReLU, pools, concatenation, the channel shuffle's copy, the
squeeze-excite ops, the classifier. A ``Tape`` adds up what ``cost`` defines, with the conventions of the
traced count in ``trace_cost.traced_cost`` (fvcore's conv / linear multiply-adds; elements read and written per
kernel, weights included; kernels launched; the largest set of live activation storages, in bytes, with
tensors released where the Python forward drops its last reference). ``cost.part_cost`` checks this
replay against the traced count on the first part of each kind a process meets, and tests check it on
hundreds of random parts, so the two cannot drift apart unnoticed. ``replay_kernels`` keeps each kernel of the
replay (its ``KIND``, tensors, memory access, a conv's shape) for analyses kernel by kernel (``nas.explain``).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field

from shufflenet_nas.search_spaces.channels import UnitChannels, se_channels
from shufflenet_nas.search_spaces.plan import HeadSpec, PartSpec, StemSpec, UnitSpec, conv_out

_FLOAT_BYTES = 4  # fp32 activations
_INDEX_BYTES = 8  # max-pool indices are int64
_ids = itertools.count()

# The kinds of kernel a replay records: conv (stem, 1x1 and depthwise convs), se_conv (a squeeze-excite's 1x1
# convs on the pooled vector), linear (the classifier), pool (3x3 stride-2 max / average pool), global_pool (a mean
# over height and width), batch_norm, relu, shuffle (the channel shuffle's copy), add, cat, sigmoid, mul.
KINDS: tuple[str, ...] = (
    "conv",
    "se_conv",
    "linear",
    "pool",
    "global_pool",
    "batch_norm",
    "relu",
    "shuffle",
    "add",
    "cat",
    "sigmoid",
    "mul",
)


@dataclass(frozen=True)
class Activation:
    """A tensor the forward makes: its shape, bytes and identity (in-place ops return the same one)."""

    channels: int
    size: int  # height = width
    id: int = field(default_factory=lambda: next(_ids))
    storage_bytes: int = 0  # a view's: the bytes of the tensor it views (0: its own)

    @property
    def numel(self) -> int:
        return self.channels * self.size * self.size

    @property
    def nbytes(self) -> int:
        return self.storage_bytes or self.numel * _FLOAT_BYTES

    def view(self, channels: int) -> Activation:
        """The first or last ``channels`` channels (``split_with_sizes``): same storage, no kernel."""
        return Activation(channels, self.size, self.id, self.nbytes)


@dataclass(frozen=True)
class ConvShape:
    """A conv's channels, kernel size, groups and output height = width."""

    in_channels: int
    out_channels: int
    kernel: int
    groups: int
    out_size: int


@dataclass(frozen=True)
class Kernel:
    """One replayed kernel: its kind (``KINDS``), the tensors it reads and writes (ids; a view has the id of the
    tensor it views, an in-place op writes the tensor it reads), elements read and written, a conv's shape."""

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    memory_access: int
    conv: ConvShape | None = None


@dataclass
class Tape:
    """Adds up a forward's kernels: multiply-adds, parameters, memory access, kernels, peak live bytes; with
    ``kernels`` a list, each kernel is appended to it too."""

    macs: int = 0
    params: int = 0
    memory_access: int = 0
    operators: int = 0
    peak: int = 0
    live: dict[int, int] = field(default_factory=dict)  # tensor id -> bytes
    kernels: list[Kernel] | None = None

    def kernel(
        self,
        inputs: list[Activation],
        outputs: list[Activation],
        weights: int = 0,
        dropped: int = 0,
        kind: str = "",
        conv: ConvShape | None = None,
    ) -> None:
        """One kernel reading ``inputs`` (+ ``weights`` elements), writing ``outputs`` and ``dropped`` int64
        elements the forward discards at once (max-pool indices: live only during the kernel); ``kind`` and
        ``conv`` say what it is (recorded in ``kernels``)."""
        access = sum(t.numel for t in inputs + outputs) + weights + dropped
        self.operators += 1
        self.memory_access += access
        if self.kernels is not None:
            ids = (tuple(t.id for t in inputs), tuple(t.id for t in outputs))
            self.kernels.append(Kernel(kind, *ids, access, conv))
        self.live.update((t.id, t.nbytes) for t in inputs + outputs)
        self.peak = max(self.peak, sum(self.live.values()) + dropped * _INDEX_BYTES)

    def release(self, *tensors: Activation) -> None:
        """The forward holds no reference to these any more."""
        for tensor in tensors:
            self.live.pop(tensor.id, None)

    # ---- layers (a conv-BN(-ReLU) releases its intermediates, as the spliced nn.Sequential does) ----------
    def conv(
        self,
        x: Activation,
        out_channels: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
        kind: str = "conv",
    ) -> Activation:
        y = Activation(out_channels, conv_out(x.size, stride))
        weight = out_channels * (x.channels // groups) * kernel * kernel
        self.macs += weight * y.size * y.size
        self.params += weight + (out_channels if bias else 0)
        shape = ConvShape(x.channels, out_channels, kernel, groups, y.size)
        self.kernel([x], [y], weight + (out_channels if bias else 0), kind=kind, conv=shape)
        return y

    def batch_norm(self, x: Activation) -> Activation:
        y = Activation(x.channels, x.size)
        self.params += 2 * x.channels
        self.kernel([x], [y], weights=4 * x.channels, kind="batch_norm")  # weight, bias, running mean, variance
        return y

    def relu_(self, x: Activation) -> Activation:
        self.kernel([x], [x], kind="relu")
        return x

    def conv_bn(
        self,
        x: Activation,
        out_channels: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        relu: bool = True,
        drop_input: bool = False,
    ) -> Activation:
        """conv-BN(-ReLU); ``drop_input``: ``x`` was the previous layer's output in the same Sequential, dropped
        as soon as the conv returns (else the caller still holds it)."""
        y = self.conv(x, out_channels, kernel, stride, groups)
        if drop_input:
            self.release(x)
        z = self.batch_norm(y)
        self.release(y)
        return self.relu_(z) if relu else z

    def then(self, x: Activation, y: Activation) -> Activation:
        """``y`` computed from ``x`` by a module (or expression) that held ``x`` throughout: now dropped."""
        self.release(x)
        return y

    def shuffle(self, x: Activation) -> Activation:
        """Channel shuffle: views, then one copy."""
        y = Activation(x.channels, x.size)
        self.kernel([x], [y], kind="shuffle")
        return y

    def squeeze_excite(self, x: Activation) -> Activation:
        squeezed = se_channels(x.channels)
        pooled = Activation(x.channels, 1)
        self.kernel([x], [pooled], kind="global_pool")
        reduced = self.relu_(self.conv(pooled, squeezed, bias=True, kind="se_conv"))
        expanded = self.conv(reduced, x.channels, bias=True, kind="se_conv")
        self.release(pooled, reduced)
        gate = Activation(x.channels, 1)
        self.kernel([expanded], [gate], kind="sigmoid")
        y = Activation(x.channels, x.size)
        self.kernel([x, gate], [y], kind="mul")
        self.release(expanded, gate)
        return y

    def pool(self, x: Activation, with_indices: bool = False) -> Activation:
        """3x3 stride-2 max-pool (with its int64 indices) or average pool."""
        y = Activation(x.channels, conv_out(x.size, 2))
        self.kernel([x], [y], dropped=y.numel if with_indices else 0, kind="pool")
        return y

    def add(self, a: Activation, b: Activation) -> Activation:
        y = Activation(a.channels, a.size)
        self.kernel([a, b], [y], kind="add")
        return y

    def cat(self, a: Activation, b: Activation) -> Activation:
        y = Activation(a.channels + b.channels, a.size)
        self.kernel([a, b], [y], kind="cat")
        return y


def symbolic_cost(spec: PartSpec) -> Tape:
    """Replay the part's forward at batch 1 on a fresh tape (its input stays live throughout)."""
    return _replay(Tape(), spec)


@functools.lru_cache(maxsize=4096)
def replay_kernels(spec: PartSpec) -> tuple[Kernel, ...]:
    """The kernels of the part's forward at batch 1, in order (cached: equal parts are replayed once)."""
    tape = _replay(Tape(kernels=[]), spec)
    return tuple(tape.kernels or ())


def _replay(tape: Tape, spec: PartSpec) -> Tape:
    """``spec``'s forward replayed on ``tape``."""
    x = Activation(spec.input_shape[0], spec.input_shape[1])
    tape.live[x.id] = x.nbytes
    if isinstance(spec, StemSpec):
        _stem(tape, x, spec)
    elif isinstance(spec, HeadSpec):
        _head(tape, x, spec)
    elif spec.unit == "v1":
        _v1_unit(tape, x, spec)
    else:
        _v2_unit(tape, x, spec)
    return tape


def _stem(tape: Tape, x: Activation, spec: StemSpec) -> None:
    y = tape.conv_bn(x, spec.out_channels, 3, spec.conv_stride)
    if spec.has_maxpool:
        tape.pool(y, with_indices=True)


def _head(tape: Tape, x: Activation, spec: HeadSpec) -> None:
    features = tape.conv_bn(x, spec.head_channels) if spec.head_channels else x
    pooled = Activation(features.channels, 1)
    tape.kernel([features], [pooled], kind="global_pool")  # mean over height and width
    if features is not x:
        tape.release(features)
    weights = spec.features * spec.num_classes + (spec.num_classes if spec.fc_bias else 0)
    tape.macs += spec.features * spec.num_classes
    tape.params += weights
    tape.kernel([pooled], [Activation(spec.num_classes, 1)], weights, kind="linear")  # addmm (mm without bias)


def _branch2(tape: Tape, x: Activation, c: UnitChannels, spec: UnitSpec) -> Activation:
    """``blocks.main_branch``: 1x1 conv-BN-ReLU, [shuffle], kxk depthwise conv-BN, 1x1 conv-BN, [SE]."""
    y = tape.conv_bn(x, c.mid, groups=c.first_groups)
    if spec.shuffle and c.groups > 1 and c.mid > c.groups:  # one channel per group: a view, no copy
        y = tape.then(y, tape.shuffle(y))
    y = tape.conv_bn(y, c.mid, spec.kernel, spec.stride, groups=c.mid, relu=False, drop_input=True)
    y = tape.conv_bn(y, c.out, groups=c.groups, relu=False, drop_input=True)
    if spec.se:
        y = tape.then(y, tape.squeeze_excite(y))
    return y


def _v1_unit(tape: Tape, x: Activation, spec: UnitSpec) -> None:
    c = spec.channels
    y = _branch2(tape, x, c, spec)
    if spec.stride == 2:
        shortcut = tape.pool(x)
        tape.cat(shortcut, tape.relu_(y))
        return
    if spec.residual:
        y = tape.then(y, tape.add(y, x))
    tape.relu_(y)


def _v2_unit(tape: Tape, x: Activation, spec: UnitSpec) -> None:
    c = spec.channels
    if spec.stride == 2:
        p = tape.conv_bn(x, spec.in_channels, spec.kernel, spec.stride, groups=spec.in_channels, relu=False)
        projected = tape.conv_bn(p, c.side, groups=c.groups, drop_input=True)
        y = _branch2(tape, x, c, spec)
        joined = tape.cat(projected, tape.relu_(y))
        tape.release(projected, y)
    else:
        left, right = x.view(c.side), x.view(c.inputs)
        y = _branch2(tape, right, c, spec)
        if spec.residual:
            y = tape.then(y, tape.add(y, right))
        joined = tape.cat(left, tape.relu_(y))
    if spec.shuffle:
        tape.shuffle(joined)
