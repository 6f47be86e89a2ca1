"""Accuracy proxies: zero-cost scores at initialisation, short training, and the reference proxies.

Every value is HIGHER IS BETTER, so a search always maximises. All zero-cost proxies score a freshly
initialised network (``build`` under ``torch.manual_seed(seed)``, the global RNG left untouched) on one fixed
batch: ``batch_size`` images from ``data`` (a seeded draw from its training split) or seeded Gaussian noise
with seeded random labels. The same definitions hold for V1 and V2 units and every width, so scores compare
across the whole space.

- ``synflow`` (Tanaka et al. 2020; Abdelfattah et al. 2021): ln of sum(theta * dR/dtheta) over conv and linear
  weights, where R sums the outputs of the network with |weights| on an all-ones input. BatchNorm in eval
  mode with its initial statistics (identity, as the papers' BN-free networks). Float64, and every stem/unit
  output is rescaled by an exact power of two whose log is added back, so it neither overflows nor
  underflows however deep or wide the network is (exact for networks without squeeze-excite).
- ``naswot`` (Mellor et al. 2021): ln det of the kernel K[i, j] = number of ReLU units where inputs i and j
  agree on being active. BatchNorm on batch statistics, as the paper. K is a Gram matrix, so K + I is
  positive definite and its log-determinant is finite even when two inputs share a pattern.
- ``grad_norm``: sum over conv/linear layers of the L2 norm of the cross-entropy gradient (Abdelfattah et al.).
- ``snip`` (Lee et al. 2019): sum of |theta * dL/dtheta| over conv and linear weights.
- ``jacob_cov`` (Mellor et al. 2020): -sum(ln(v + k) + 1/(v + k)), k = 1e-5, over the eigenvalues v of the
  correlation matrix of the input Jacobians. A Jacobian with no variance correlates with nothing (not NaN).
- ``params``, ``mflops``: parameter count and conv + linear multiply-adds (``nas.cost``), the references every
  comparison shows.
- ``train``: validation accuracy (0..1) after a short training run (``nas.training``); needs ``data``.

A proxy that still comes out NaN or infinite raises ``ProxyError`` rather than returning a value a search
would rank.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.nas.cost import count_cost
from shufflenet_nas.nas.data import Dataset
from shufflenet_nas.nas.training import ReportCallback, TrainConfig, short_train
from shufflenet_nas.search_spaces.builder import ShuffleNet, build
from shufflenet_nas.search_spaces.genotype import Genotype

ZERO_COST_PROXIES: tuple[str, ...] = ("synflow", "naswot", "grad_norm", "snip", "jacob_cov")
REFERENCE_PROXIES: tuple[str, ...] = ("params", "mflops")
PROXY_NAMES: tuple[str, ...] = (*ZERO_COST_PROXIES, *REFERENCE_PROXIES, "train")
DEFAULT_PROXY = "naswot"
DEFAULT_BATCH_SIZE = 8
_JACOB_COV_K = 1e-5


class ProxyError(ShuffleNetNASError):
    """A proxy gave no finite score for an architecture."""


@dataclass(frozen=True)
class ProxyScore:
    """One proxy's score (higher is better) and the seconds it took; ``pruned``: ``report`` stopped training."""

    value: float
    seconds: float
    pruned: bool = False


@dataclass(frozen=True)
class Probe:
    """What a zero-cost proxy scores: the architecture, the seed of its weights, one input batch."""

    genotype: Genotype
    seed: int
    inputs: torch.Tensor
    labels: torch.Tensor

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
    """Score ``genotype`` with each named proxy; with ``data`` it is first fitted to the data's size and classes."""
    check_proxy_names(names, data)
    if batch_size < 2:
        raise InvalidArgumentError(f"batch_size={batch_size}: the proxies need at least 2 images (BatchNorm, kernels)")
    if data is not None:
        genotype = data.fit(genotype)
    if set(names) <= {*REFERENCE_PROXIES, "train"}:  # nothing scores a batch: skip drawing one (~7 ms at 224 px)
        batch = torch.empty(0), torch.empty(0, dtype=torch.long)
    else:
        with torch.inference_mode(False):  # usable by autograd even if the caller is in inference mode
            if data is not None:
                batch = data.sample_batch(batch_size, seed)
            else:
                batch = synthetic_batch(genotype, batch_size, seed)
    probe = Probe(genotype, seed, *batch)
    scores: dict[str, ProxyScore] = {}
    for name in names:
        start = time.perf_counter()
        if name == "train" and data is not None:  # check_proxy_names has made sure train comes with data
            result = short_train(genotype, data, train_config, seed=seed, report=report)
            value, pruned = result.accuracy, result.pruned
        else:
            value, pruned = _SCORERS[name](probe), False
        if not math.isfinite(value):
            raise ProxyError(f"proxy {name} of {genotype.arch_id} is {value}; the network's outputs are not finite")
        scores[name] = ProxyScore(value, time.perf_counter() - start, pruned)
    return scores


# ---- the proxies -------------------------------------------------------------------------------------
def _weights(model: nn.Module) -> list[torch.Tensor]:
    """Conv and linear weights: the parameters the zero-cost papers score."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _parts(model: ShuffleNet) -> list[nn.Module]:
    """Stem, every unit and the head, in forward order."""
    return model.parts()


def synflow(probe: Probe) -> float:
    """ln of the synaptic-flow score, in float64 with exact power-of-two rescaling between units."""
    model = probe.model().double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.abs_()
    log_scale = 0.0

    def rescale(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        nonlocal log_scale
        peak = float(output.detach().abs().max())
        if not 0 < peak < math.inf:
            return output
        exponent = math.frexp(peak)[1]
        log_scale += exponent * math.log(2)
        return output * 2.0**-exponent

    hooks = [part.register_forward_hook(rescale) for part in _parts(model)]
    size = probe.genotype.resolution
    with torch.inference_mode(False), torch.enable_grad():
        ones = torch.ones(1, 3, size, size, dtype=torch.float64)
        weights = _weights(model)
        grads = torch.autograd.grad(model(ones).sum(), weights)
        total = float(sum((w.detach() * g).sum() for w, g in zip(weights, grads, strict=True)))
    for hook in hooks:
        hook.remove()
    return math.log(total) + log_scale if total > 0 else -math.inf


def naswot(probe: Probe) -> float:
    """ln det(K + I), K the ReLU activation-pattern agreement kernel of the batch."""
    model = probe.model().train()
    count = len(probe.inputs)
    kernel = torch.eye(count, dtype=torch.float64)

    def accumulate(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        codes = (output.detach().flatten(1) > 0).float()
        active = codes.sum(1).double()
        # agreements = active in both + inactive in both = 2 c_i.c_j - |c_i| - |c_j| + units
        both = (codes @ codes.T).double()
        kernel.add_(2 * both - active[:, None] - active[None, :] + codes.shape[1])

    hooks = [m.register_forward_hook(accumulate) for m in model.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model(probe.inputs)
    for hook in hooks:
        hook.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


def _loss_gradients(probe: Probe) -> tuple[list[torch.Tensor], tuple[torch.Tensor, ...]]:
    """Conv/linear weights and their cross-entropy gradients on the batch (BatchNorm on batch statistics)."""
    model = probe.model().train()
    weights = _weights(model)
    with torch.inference_mode(False), torch.enable_grad():
        loss = F.cross_entropy(model(probe.inputs), probe.labels)
        return weights, torch.autograd.grad(loss, weights)


def grad_norm(probe: Probe) -> float:
    """Sum of the per-layer L2 norms of the loss gradient."""
    _, grads = _loss_gradients(probe)
    return float(sum(g.norm() for g in grads))


def snip(probe: Probe) -> float:
    """Sum of the connection saliencies |theta * dL/dtheta|."""
    weights, grads = _loss_gradients(probe)
    return float(sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads, strict=True)))


def jacob_cov(probe: Probe) -> float:
    """Score of the correlation of the input Jacobians across the batch (higher: less correlated)."""
    model = probe.model().train()
    with torch.inference_mode(False), torch.enable_grad():
        inputs = probe.inputs.clone().requires_grad_(True)
        (jacobian,) = torch.autograd.grad(model(inputs).sum(), inputs)
    return jacobian_score(jacobian)


def jacobian_score(jacobian: torch.Tensor) -> float:
    """-sum(ln(v + k) + 1/(v + k)) over the eigenvalues v of the rows' correlation matrix (Mellor et al.).

    A row with no variance correlates with nothing (0 off the diagonal) instead of making the matrix NaN.
    """
    rows = jacobian.detach().flatten(1).double()
    rows = rows - rows.mean(1, keepdim=True)
    norms = rows.norm(dim=1, keepdim=True)
    rows = torch.where(norms > 0, rows / norms.clamp_min(1e-300), torch.zeros_like(rows))
    correlation = rows @ rows.T
    correlation.fill_diagonal_(1.0)
    eigenvalues = torch.linalg.eigvalsh(correlation).clamp_min(0)  # rounding can leave tiny negatives
    return float(-(torch.log(eigenvalues + _JACOB_COV_K) + 1 / (eigenvalues + _JACOB_COV_K)).sum())


def params(probe: Probe) -> float:
    """Parameter count."""
    return float(count_cost(probe.genotype).params)


def mflops(probe: Probe) -> float:
    """Conv + linear multiply-adds in millions (the papers' FLOPs)."""
    return count_cost(probe.genotype).mflops


_SCORERS: dict[str, Callable[[Probe], float]] = {
    "synflow": synflow,
    "naswot": naswot,
    "grad_norm": grad_norm,
    "snip": snip,
    "jacob_cov": jacob_cov,
    "params": params,
    "mflops": mflops,
}
