"""Accuracy proxies: zero-cost scores at initialisation, short training, and the reference proxies.

Every value is HIGHER IS BETTER, so a search always maximises. All zero-cost proxies score a freshly
initialised network (``build`` under ``torch.manual_seed(seed)``, the global RNG left untouched) on one fixed
batch: ``batch_size`` images from ``data`` (a seeded draw from its training split) whenever ``data`` is given,
else seeded Gaussian noise with seeded random labels; each ``ProxyScore`` says which (``inputs``, ``on_noise``).
The same definitions hold for V1 and V2 units and every width, so scores compare across the whole space.
Definitions (``nas.proxy_scores``): ``synflow``, ``naswot`` = N ln ``relu_count`` + ``naswot_diversity``,
``grad_norm``, ``snip``, ``jacob_cov``. ``synflow`` runs BatchNorm in eval mode on an all-ones image, the others
on batch statistics. ``params``, ``mflops``: parameter count and conv + linear multiply-adds (``nas.cost``), the
references every comparison shows. ``train``: validation accuracy (0..1) after a short training run
(``nas.short_training``); needs ``data``.

A proxy that comes out NaN or infinite raises ``ProxyError`` rather than returning a value a search would rank.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.nas.cost import count_cost
from shufflenet_nas.nas.data import Dataset
from shufflenet_nas.nas.proxy_scores import (
    ProxyError,
    ReluKernel,
    grad_norm_score,
    jacob_cov_score,
    relu_kernel,
    snip_score,
    synflow_score,
)
from shufflenet_nas.nas.short_training import ReportCallback, TrainConfig, short_train
from shufflenet_nas.search_spaces.builder import ShuffleNet, build
from shufflenet_nas.search_spaces.genotype import Genotype

ZERO_COST_PROXIES: tuple[str, ...] = (
    "synflow",
    "naswot",
    "naswot_diversity",
    "relu_count",
    "grad_norm",
    "snip",
    "jacob_cov",
)
REFERENCE_PROXIES: tuple[str, ...] = ("params", "mflops")
PROXY_NAMES: tuple[str, ...] = (*ZERO_COST_PROXIES, *REFERENCE_PROXIES, "train")
BATCH_PROXIES: tuple[str, ...] = ("naswot", "naswot_diversity", "grad_norm", "snip", "jacob_cov")  # read the batch
# Chosen by the validation protocol (docs/proxies.md): out of sample on the papers' 33 models (leave-one-out, and
# chosen on V1 / scored on V2) no zero-cost proxy beats the references, and params is chosen every time.
DEFAULT_PROXY = "params"
DEFAULT_BATCH_SIZE = 8
_NO_INPUTS = "none: counted on the architecture"
_INPUTS = {"synflow": "one all-ones image (data-free by definition)", "relu_count": _NO_INPUTS}


@dataclass(frozen=True)
class ProxyScore:
    """One proxy's score (higher is better) and the seconds it took; ``pruned``: ``report`` stopped training.

    ``inputs`` says what the proxy ran on; ``on_noise`` is True when that was seeded Gaussian noise, not data.
    """

    value: float
    seconds: float
    pruned: bool = False
    inputs: str = _NO_INPUTS
    on_noise: bool = False


@dataclass(frozen=True)
class Probe:
    """What a zero-cost proxy scores: the architecture, the seed of its weights, one input batch (``source``)."""

    genotype: Genotype
    seed: int
    inputs: torch.Tensor
    labels: torch.Tensor
    source: str = "a given batch"
    on_noise: bool = False
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # shared work of one call

    def model(self) -> ShuffleNet:
        """A freshly initialised network: the same weights for the same seed, global RNG untouched."""
        with torch.random.fork_rng(devices=[]), torch.inference_mode(False):
            torch.manual_seed(self.seed)
            return build(self.genotype)


def parse_proxy_names(text: str) -> tuple[str, ...]:
    """``"synflow, naswot"`` -> ("synflow", "naswot"); duplicates dropped, order kept."""
    return tuple(dict.fromkeys(name.strip().lower() for name in text.split(",") if name.strip()))


def check_proxy_names(names: Sequence[str], data: object | None) -> None:
    """Raise ``InvalidArgumentError`` naming unknown proxies, or ``train`` asked for without a dataset."""
    if not names:
        raise InvalidArgumentError(f"`names`: name at least one proxy of {', '.join(PROXY_NAMES)}")
    unknown = [name for name in names if name not in PROXY_NAMES]
    if unknown:
        raise InvalidArgumentError(
            f"names={tuple(names)!r}: unknown proxy {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(PROXY_NAMES)}"
        )
    if "train" in names and data is None:
        raise InvalidArgumentError("proxy 'train' needs `data` (an ImageFolder or CIFAR directory to train on)")


def synthetic_batch(genotype: Genotype, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded Gaussian images at the genotype's resolution and seeded random labels."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(size, 3, genotype.resolution, genotype.resolution, generator=generator)
    return images, torch.randint(genotype.num_classes, (size,), generator=generator)


def compute_proxies(
    genotype: Genotype,
    names: Sequence[str],
    *,
    data: Dataset | None = None,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    report: ReportCallback | None = None,
    train_config: TrainConfig = TrainConfig(),
) -> dict[str, ProxyScore]:
    """Score ``genotype`` with each named proxy; with ``data`` it is first fitted to the data's size and classes
    and the batch is drawn from the data's training images."""
    check_proxy_names(names, data)
    if batch_size < 2:
        raise InvalidArgumentError(f"batch_size={batch_size}: the proxies need at least 2 images (BatchNorm, kernels)")
    if data is not None:
        genotype = data.fit(genotype)
    probe = _probe(genotype, names, data, seed, batch_size)
    scores: dict[str, ProxyScore] = {}
    for name in names:
        start = time.perf_counter()
        inputs, on_noise = _INPUTS.get(name, _NO_INPUTS), False
        if name == "train" and data is not None:  # check_proxy_names has made sure train comes with data
            result = short_train(genotype, data, train_config, seed=seed, report=report)
            value, pruned, inputs = result.accuracy, result.pruned, f"short training on {_named(data)}"
        else:
            try:
                value, pruned = _SCORERS[name](probe), False
            except ProxyError as error:
                raise ProxyError(f"proxy {name} of {genotype.arch_id}: {error}") from None
            if name in BATCH_PROXIES:
                inputs, on_noise = probe.source, probe.on_noise
        if not math.isfinite(value):
            raise ProxyError(f"proxy {name} of {genotype.arch_id} is {value}; the network's outputs are not finite")
        scores[name] = ProxyScore(value, time.perf_counter() - start, pruned, inputs, on_noise)
    return scores


def _named(data: Dataset) -> str:
    return f"{data.format} at {data.path}"


def _probe(genotype: Genotype, names: Sequence[str], data: Dataset | None, seed: int, size: int) -> Probe:
    """The probe of one ``compute_proxies`` call: a batch of ``data``, of noise, or none if no proxy reads one."""
    if set(names) <= {*REFERENCE_PROXIES, "train"}:  # nothing scores a batch: skip drawing one (~7 ms at 224 px)
        return Probe(genotype, seed, torch.empty(0), torch.empty(0, dtype=torch.long), "no batch")
    with torch.inference_mode(False):  # usable by autograd even if the caller is in inference mode
        if data is not None:
            inputs, labels = data.sample_batch(size, seed)
            return Probe(genotype, seed, inputs, labels, f"{len(inputs)} images of {_named(data)}, seed {seed}")
        inputs, labels = synthetic_batch(genotype, size, seed)
    source = f"seeded Gaussian noise: {size} images, seed {seed}, random labels"
    return Probe(genotype, seed, inputs, labels, source, on_noise=True)


# ---- the proxies on a probe (definitions: nas.proxy_scores) ------------------------------------------
def synflow(probe: Probe) -> float:
    """ln of the synaptic-flow score (|weights|, eval mode, all-ones image, float64, exact rescaling)."""
    size = probe.genotype.resolution
    return synflow_score(probe.model(), (3, size, size))


def _kernel(probe: Probe) -> ReluKernel:
    """NASWOT's K_H over every ReLU call (BatchNorm on batch statistics), computed once per probe."""
    if "relu_kernel" not in probe.memo:
        probe.memo["relu_kernel"] = relu_kernel(probe.model().train(), probe.inputs)
    return probe.memo["relu_kernel"]


def naswot(probe: Probe) -> float:
    """ln|det K_H| (Mellor et al. 2021) over every ReLU unit of the network."""
    return _kernel(probe).terms()[0]


def naswot_diversity(probe: Probe) -> float:
    """ln det(K_H / N_A): ``naswot`` less its count term N ln N_A (<= 0; higher: more diverse codes)."""
    return _kernel(probe).terms()[1]


def relu_count(probe: Probe) -> float:
    """N_A, the ReLU units (outputs) per image: the reference ``naswot`` grows with."""
    return float(_kernel(probe).units)


def grad_norm(probe: Probe) -> float:
    """Sum of the per-layer L2 norms of the loss gradient (BatchNorm on batch statistics)."""
    return grad_norm_score(probe.model().train(), probe.inputs, probe.labels)


def snip(probe: Probe) -> float:
    """Sum of the connection saliencies |theta * dL/dtheta| (BatchNorm on batch statistics)."""
    return snip_score(probe.model().train(), probe.inputs, probe.labels)


def jacob_cov(probe: Probe) -> float:
    """Score of the correlation of the input Jacobians across the batch (higher: less correlated)."""
    return jacob_cov_score(probe.model().train(), probe.inputs)


def params(probe: Probe) -> float:
    """Parameter count."""
    return float(count_cost(probe.genotype).params)


def mflops(probe: Probe) -> float:
    """Conv + linear multiply-adds in millions (the papers' FLOPs)."""
    return count_cost(probe.genotype).mflops


_SCORERS: dict[str, Callable[[Probe], float]] = {
    "synflow": synflow,
    "naswot": naswot,
    "naswot_diversity": naswot_diversity,
    "relu_count": relu_count,
    "grad_norm": grad_norm,
    "snip": snip,
    "jacob_cov": jacob_cov,
    "params": params,
    "mflops": mflops,
}
