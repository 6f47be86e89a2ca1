"""The zero-cost proxies as their papers define them, on any network (``nas.proxies`` runs them on a genotype).

- ``naswot`` (Mellor et al. 2021): for N images, every ReLU unit's output gives each image a bit (1 where > 0);
  c_i is image i's code over all N_A ReLU units of the network, K_H[i, j] = N_A - hamming(c_i, c_j), and the
  score is ln|det K_H|. It splits exactly into ``N ln N_A`` (``relu_count`` is N_A) plus ``naswot_diversity`` =
  ln det(K_H / N_A) = ln det(1 - hamming / N_A), which is <= 0 and grows as the codes differ more.
  A ReLU unit is one element of the output of a ReLU call, counted at torch's dispatcher, so a module
  (``nn.ReLU``, ``nn.ReLU6``) and a function (``F.relu``, ``torch.relu``, ``x.relu_()``, in place or not) count
  alike: the aten operators ``relu``, ``relu_`` and ``hardtanh``/``hardtanh_`` with ``min_val`` 0 (how torch
  runs ReLU6). ``clamp``, ``threshold``, leaky ReLU, GELU and the like are not ReLU calls and do not count.
  Two images with one code make K_H singular (the paper's score is -inf): ``ProxyError``.
- ``synflow`` (Tanaka et al. 2020): ln of sum(theta * dR/dtheta) over conv and linear weights, R the sum of the
  outputs of the network with every parameter and buffer replaced by its absolute value, in eval mode (BatchNorm
  on its running statistics, as the SynFlow code), on one all-ones image.
- ``grad_norm`` (Abdelfattah et al. 2021): sum over conv and linear layers of ||dL/dW||_2, L the cross-entropy.
- ``snip`` (Lee et al. 2019): sum over conv and linear weights of |W * dL/dW|.
- ``jacob_cov`` (Mellor et al. 2020, v1): -sum(ln(v + k) + 1/(v + k)), k = 1e-5, over the eigenvalues v of the
  correlation matrix of the rows J_i = d(sum of outputs)/d(image i). A constant row correlates with nothing
  (0, where numpy's corrcoef gives NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from shufflenet_nas.errors import ShuffleNetNASError
from shufflenet_nas.search_spaces.blocks import SqueezeExcite
from shufflenet_nas.search_spaces.builder import ShuffleNet

JACOB_COV_K = 1e-5
_aten = torch.ops.aten
_RELU = (_aten.relu, _aten.relu_)
_CLIPPED = (_aten.hardtanh, _aten.hardtanh_)  # min_val 0: ReLU6 (F.relu6 and nn.ReLU6 run as hardtanh(x, 0, 6))


class ProxyError(ShuffleNetNASError):
    """A proxy gave no finite score for an architecture."""


def is_relu_call(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether an aten call is a ReLU: ``relu``, ``relu_``, or ``hardtanh(_)`` clipping at 0 from below."""
    packet = getattr(func, "overloadpacket", None)
    if packet in _RELU:
        return True
    if packet in _CLIPPED:
        return (args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)) == 0
    return False


class _ReluCodes(TorchDispatchMode):
    """Adds every ReLU output's agreement counts to K_H while a forward pass runs."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch = batch
        self.units = 0
        self.kernel = torch.zeros(batch, batch, dtype=torch.float64)

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # never compiled; skipping would import torch._dynamo on first use (seconds)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        if isinstance(output, torch.Tensor) and is_relu_call(func, args, kwargs):
            self._add(output)
        return output

    def _add(self, output: torch.Tensor) -> None:
        if output.dim() == 0 or output.shape[0] != self.batch:
            shape = tuple(output.shape)
            raise ProxyError(f"a ReLU output of shape {shape} has no leading batch dimension of {self.batch}")
        codes = (output.detach().reshape(self.batch, -1) > 0).to(torch.float64)  # exact counts below 2**53
        units = codes.shape[1]
        active = codes.sum(1)
        # agreements = active in both + inactive in both = 2 c_i.c_j - |c_i| - |c_j| + units
        self.kernel += (2 * (codes @ codes.T) - active[:, None] - active[None, :] + units).cpu()
        self.units += units


@dataclass(frozen=True)
class ReluKernel:
    """NASWOT's K_H of a batch (float64, exact integers) and N_A, the ReLU units (outputs) per image."""

    kernel: torch.Tensor
    units: int

    def terms(self) -> tuple[float, float]:
        """(naswot, naswot_diversity) = (ln|det K_H|, ln det(K_H / N_A)); ``ProxyError`` if K_H is singular."""
        if self.units == 0:
            raise ProxyError("the network has no ReLU unit, so K_H = 0 (naswot is -inf)")
        count = len(self.kernel)
        same = (self.kernel == self.units) & ~torch.eye(count, dtype=torch.bool)
        if same.any():
            i, j = (int(k) for k in same.nonzero()[0])
            raise ProxyError(
                f"images {i} and {j} of the batch have the same ReLU activation code, so K_H is singular "
                "(naswot is -inf; a batch with repeated images?)"
            )
        sign, diversity = torch.linalg.slogdet(self.kernel / self.units)
        if sign <= 0 or not math.isfinite(diversity):
            raise ProxyError("K_H is numerically singular (naswot is -inf)")
        return float(diversity) + count * math.log(self.units), float(diversity)


def relu_kernel(model: nn.Module, inputs: torch.Tensor) -> ReluKernel:
    """NASWOT's kernel over every ReLU call of ``model(inputs)`` (in the mode ``model`` is in)."""
    codes = _ReluCodes(len(inputs))
    with torch.no_grad(), codes:
        model(inputs)
    return ReluKernel(codes.kernel, codes.units)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    """Conv and linear weights: the parameters the zero-cost papers score."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]


def synflow_score(model: nn.Module, image_shape: tuple[int, ...]) -> float:
    """ln of the synaptic-flow score of ``model`` on one all-ones image of ``image_shape`` (C, H, W).

    Scores ``model`` itself, no copy: it is left in float64 and eval mode with |parameters| and |buffers|.
    For a ``ShuffleNet`` without biases (as initialised), every stem/unit output is divided by an exact power of
    two whose log is added back: exact, as the network is positively homogeneous and a squeeze-excite gate is fed
    its true input, so the score neither overflows nor underflows however deep the network is.
    """
    net = model.double().eval()
    with torch.no_grad():
        for tensor in (*net.parameters(), *net.buffers()):
            if tensor.is_floating_point():
                tensor.abs_()
    shift = 0  # log2 of (true activation / computed activation) at the current point of the forward pass

    def rescale(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        nonlocal shift
        peak = float(output.detach().abs().max())
        if not 0 < peak < math.inf:
            return output
        exponent = math.frexp(peak)[1]
        shift += exponent
        return output * math.ldexp(1.0, -exponent)

    def true_gate_input(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        # zero biases: the gate's input scales with the unit's input; past 2**1000 the sigmoid is 1 either way
        return output * math.ldexp(1.0, max(-1000, min(shift, 1000)))

    hooks = []
    if isinstance(net, ShuffleNet) and _no_offsets(net):
        hooks = [part.register_forward_hook(rescale) for part in net.parts()]
        gates = [m.expand for m in net.modules() if isinstance(m, SqueezeExcite)]
        hooks += [gate.register_forward_hook(true_gate_input) for gate in gates]
    with torch.inference_mode(False), torch.enable_grad():
        weights = _weights(net)
        ones = torch.ones(1, *image_shape, dtype=torch.float64)
        grads = torch.autograd.grad(net(ones).sum(), weights)
        total = float(sum((w.detach() * g).sum() for w, g in zip(weights, grads, strict=True)))
    for hook in hooks:
        hook.remove()
    return math.log(total) + shift * math.log(2) if total > 0 else -math.inf


def _no_offsets(net: nn.Module) -> bool:
    """No bias or BatchNorm mean anywhere (as at initialisation): the network is positively homogeneous."""
    tensors = (getattr(m, name, None) for m in net.modules() for name in ("bias", "running_mean"))
    return not any(isinstance(t, torch.Tensor) and bool(t.any()) for t in tensors)


def loss_gradients(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor
) -> tuple[list[torch.Tensor], tuple[torch.Tensor, ...]]:
    """Conv/linear weights of ``model`` and the gradients of the cross-entropy of ``model(inputs)``."""
    weights = _weights(model)
    with torch.inference_mode(False), torch.enable_grad():
        loss = F.cross_entropy(model(inputs), labels)
        return weights, torch.autograd.grad(loss, weights)


def grad_norm_score(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum over conv/linear layers of the L2 norm of the loss gradient."""
    _, grads = loss_gradients(model, inputs, labels)
    return float(sum(g.norm() for g in grads))


def snip_score(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum of the connection saliencies |W * dL/dW| over conv/linear weights."""
    weights, grads = loss_gradients(model, inputs, labels)
    return float(sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads, strict=True)))


def jacob_cov_score(model: nn.Module, inputs: torch.Tensor) -> float:
    """``jacobian_score`` of d(sum of ``model(inputs)``)/d(inputs)."""
    with torch.inference_mode(False), torch.enable_grad():
        inputs = inputs.clone().requires_grad_(True)
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
    return float(-(torch.log(eigenvalues + JACOB_COV_K) + 1 / (eigenvalues + JACOB_COV_K)).sum())
