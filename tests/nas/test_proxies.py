from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from shufflenet_nas import (
    PROXY_NAMES,
    InvalidArgumentError,
    TrainConfig,
    compute_proxies,
    count_cost,
    load_dataset,
    validate_against_paper,
    validate_against_training,
)
from shufflenet_nas.nas import proxies
from shufflenet_nas.nas.proxies import (
    DEFAULT_PROXY,
    ZERO_COST_PROXIES,
    Probe,
    ProxyError,
    check_proxy_names,
    jacob_cov,
    naswot,
    parse_proxy_names,
    synflow,
    synthetic_batch,
)
from shufflenet_nas.nas.proxy_scores import (
    grad_norm_score,
    jacob_cov_score,
    jacobian_score,
    relu_kernel,
    snip_score,
    synflow_score,
)
from shufflenet_nas.nas.validation import rank_correlation
from shufflenet_nas.search_spaces import BASELINES, Genotype, StageGene, build

ALL_AT_INIT = (*ZERO_COST_PROXIES, "params", "mflops")
K = 1e-5  # jacob_cov's k


def test_names_cover_the_issue() -> None:
    assert set(PROXY_NAMES) == {
        *("synflow", "naswot", "naswot_diversity", "relu_count", "grad_norm", "snip", "jacob_cov"),
        *("params", "mflops", "train"),
    }
    assert DEFAULT_PROXY in PROXY_NAMES


def test_the_default_is_what_leave_one_out_chooses_among_the_references_on_the_papers_table() -> None:
    # The full protocol over every proxy takes minutes (docs/proxies.md has its figures: params is chosen 33 of
    # 33 times); among the counted references, which need no forward pass, the choice is checked here.
    validation = validate_against_paper(["params", "mflops"], resamples=200)
    assert validation.analysis.leave_one_out.chosen == {DEFAULT_PROXY: len(validation.architectures)}
    assert parse_proxy_names(" NASWOT, synflow,naswot,") == ("naswot", "synflow")


def test_check_proxy_names_rejects_unknown_names_and_train_without_data() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown proxy 'zen', 'fisher'; choose from synflow"):
        check_proxy_names(["naswot", "zen", "fisher"], None)
    with pytest.raises(InvalidArgumentError, match="proxy 'train' needs `data`"):
        check_proxy_names(["train"], None)
    with pytest.raises(InvalidArgumentError, match="at least one proxy"):
        check_proxy_names([], None)
    check_proxy_names(["train", "snip"], object())


@pytest.mark.parametrize("fixture", ["tiny_v2", "tiny_v1"])
def test_same_seed_same_score_and_another_seed_another(fixture: str, request: pytest.FixtureRequest) -> None:
    genotype = request.getfixturevalue(fixture)
    first = compute_proxies(genotype, ALL_AT_INIT, seed=7)
    second = compute_proxies(genotype, ALL_AT_INIT, seed=7)
    assert {k: v.value for k, v in first.items()} == {k: v.value for k, v in second.items()}
    other = compute_proxies(genotype, ZERO_COST_PROXIES, seed=8)
    seeded = [name for name in ZERO_COST_PROXIES if name != "relu_count"]  # a count of the architecture
    assert all(other[name].value != first[name].value for name in seeded)
    assert other["relu_count"].value == first["relu_count"].value
    assert all(math.isfinite(score.value) and score.seconds >= 0 for score in first.values())
    assert first["params"].value == count_cost(genotype).params
    assert first["mflops"].value == pytest.approx(count_cost(genotype).mflops)


def test_proxies_leave_global_torch_state_alone(tiny_v2: Genotype) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    with torch.no_grad():
        compute_proxies(tiny_v2, ZERO_COST_PROXIES)
        assert not torch.is_grad_enabled()
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads
    with torch.inference_mode():  # the gradient proxies still work inside inference mode
        scores = compute_proxies(tiny_v2, ["snip", "naswot"])
        assert all(math.isfinite(score.value) for score in scores.values())


# ---- naswot against an independent implementation ----------------------------------------------------
def _module_hook_naswot(model: nn.Module, inputs: torch.Tensor) -> tuple[float, int]:
    """NASWOT as Mellor et al.'s code computes it: hook every ReLU *module*, code = input > 0, K = N_A - hamming,
    ln|det K| by numpy. Returns (score, N_A); sees no functional ReLU."""
    codes: list[np.ndarray] = []

    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        codes.append((args[0].detach().flatten(1) > 0).numpy())

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model(inputs)
    for handle in hooks:
        handle.remove()
    if not codes:
        return -math.inf, 0
    return _log_det_of_codes(np.concatenate(codes, axis=1))


def _log_det_of_codes(codes: np.ndarray) -> tuple[float, int]:
    """ln|det K_H| with K_H[i, j] = N_A - hamming(c_i, c_j), and N_A, from binary codes (N, N_A)."""
    count, units = codes.shape
    hamming = np.zeros((count, count), dtype=np.int64)
    for i in range(count):
        for j in range(i + 1, count):
            hamming[i, j] = hamming[j, i] = np.count_nonzero(codes[i] != codes[j])
    return float(np.linalg.slogdet((units - hamming).astype(np.float64))[1]), units


def _tiny(unit: str, se: bool) -> Genotype:
    if unit == "v1":
        stages = tuple(StageGene("v1", 2, c, groups=2, residual=True, se=se) for c in (24, 48, 96))
        return Genotype(8, stages, head_channels=0, stem_stride=1, resolution=32, num_classes=10)
    stages = tuple(StageGene("v2", 2, c, se=se) for c in (16, 32, 64))
    return Genotype(8, stages, head_channels=64, stem_stride=1, resolution=32, num_classes=10)


@pytest.mark.parametrize(("unit", "se"), [("v1", False), ("v1", True), ("v2", False), ("v2", True)])
def test_naswot_agrees_with_an_independent_implementation(unit: str, se: bool) -> None:
    genotype = _tiny(unit, se)
    probe = _probe(genotype, batch=8)
    scores = compute_proxies(genotype, ["naswot", "naswot_diversity", "relu_count"], batch_size=8)
    expected, units = _module_hook_naswot(probe.model().train(), probe.inputs)  # every ReLU here is a module
    assert scores["naswot"].value == pytest.approx(expected, rel=1e-10)
    assert scores["relu_count"].value == units
    count_term = 8 * math.log(units)
    assert scores["naswot_diversity"].value == pytest.approx(expected - count_term, rel=1e-8)
    assert scores["naswot_diversity"].value < 0  # K_H / N_A has a unit diagonal: det <= 1 (Hadamard)


class _Functional(nn.Module):
    """ReLUs written as functions, one of each spelling, beside operators that are not ReLUs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        a = F.relu(self.conv(x))
        b = torch.relu(a - 0.3)
        c = (b * 2 - 0.2).relu_()
        d = F.relu6(c * 3 - 0.5, inplace=True)
        return [a, b, c, d]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.features(x)[-1]
        e = torch.clamp(d - 1, min=0) + F.leaky_relu(d - 2) + F.threshold(d - 3, 0.0, 0.0)  # not ReLU calls
        return self.fc(e.mean((2, 3)))


def test_naswot_sees_functional_relus_that_module_hooks_miss() -> None:
    torch.manual_seed(0)
    model, inputs = _Functional(), torch.randn(6, 3, 5, 5)
    kernel = relu_kernel(model, inputs)
    with torch.no_grad():
        codes = np.concatenate([(t.flatten(1) > 0).numpy() for t in model.features(inputs)], axis=1)
    expected, units = _log_det_of_codes(codes)
    assert kernel.units == units == 4 * 4 * 5 * 5
    assert kernel.terms()[0] == pytest.approx(expected, rel=1e-10)
    assert _module_hook_naswot(model, inputs) == (-math.inf, 0)  # hooking nn.ReLU modules finds nothing


class _InPlaceReLU(nn.Module):
    """A block refactored to a functional in-place ReLU: not an ``nn.ReLU``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.relu_()


@pytest.mark.parametrize("fixture", ["tiny_v2", "tiny_v1"])
def test_no_refactor_of_the_blocks_changes_naswot(fixture: str, request: pytest.FixtureRequest) -> None:
    probe = _probe(request.getfixturevalue(fixture), batch=8)
    model = probe.model().train()
    before = relu_kernel(model, probe.inputs)
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, _InPlaceReLU())
                replaced += 1
    after = relu_kernel(model, probe.inputs)
    assert replaced > 10 and not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert after.units == before.units and after.terms() == before.terms()


def test_naswot_known_answer_and_repeated_images(tiny_v2: Genotype) -> None:
    # two images, four units, codes 1010 and 1100: hamming 2, K = [[4, 2], [2, 4]], det 12
    kernel = relu_kernel(nn.ReLU(), torch.tensor([[1.0, -1, 1, -1], [1, 1, -1, -1]]))
    assert kernel.units == 4 and kernel.terms() == pytest.approx((math.log(12), math.log(12 / 16)))
    image = torch.randn(1, 3, 32, 32)
    probe = Probe(tiny_v2, 0, torch.cat([torch.randn(1, 3, 32, 32), image, image]), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ProxyError, match="images 1 and 2 of the batch have the same ReLU activation code"):
        naswot(probe)
    with pytest.raises(ProxyError, match="no ReLU unit"):
        relu_kernel(nn.Linear(4, 2), torch.randn(3, 4)).terms()


# ---- synflow, grad_norm, snip, jacob_cov against their definitions -----------------------------------
def _plain_synflow(genotype: Genotype, dtype: torch.dtype) -> float:
    """Synflow as in the papers, without rescaling: ln of sum(theta * dR/dtheta)."""
    torch.manual_seed(0)
    model = build(genotype).to(dtype).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.abs_()
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    ones = torch.ones(1, 3, genotype.resolution, genotype.resolution, dtype=dtype)
    grads = torch.autograd.grad(model(ones).sum(), weights)
    return math.log(float(sum((w.detach() * g).sum() for w, g in zip(weights, grads, strict=True))))


def _probe(genotype: Genotype, seed: int = 0, batch: int = 4) -> Probe:
    return Probe(genotype, seed, *synthetic_batch(genotype, batch, seed))


def _deep(repeats: int, resolution: int = 32, se: bool = False) -> Genotype:
    stages = tuple(StageGene("v2", repeats, c, se=se) for c in (64, 128, 256))
    return Genotype(16, stages, head_channels=128, stem_stride=1, resolution=resolution, num_classes=10)


def test_synflow_rescaling_is_exact_with_squeeze_excite_and_avoids_float32_overflow() -> None:
    # squeeze-excite: feeding the gate its rescaled input instead of its true one was off by 2e-6 (tiny V1 + SE)
    for genotype in (_tiny("v2", False), _tiny("v1", False), _tiny("v2", True), _tiny("v1", True)):
        assert synflow(_probe(genotype)) == pytest.approx(_plain_synflow(genotype, torch.float64), rel=1e-12)
    deep = _deep(20)
    assert _plain_synflow(deep, torch.float64) > math.log(torch.finfo(torch.float32).max)
    assert math.isnan(_plain_synflow(deep, torch.float32))  # overflows to inf, then inf * 0 = nan
    assert synflow(_probe(deep)) == pytest.approx(_plain_synflow(deep, torch.float64), rel=1e-12)


def test_synflow_beyond_the_float64_range_stays_finite() -> None:
    value = synflow(_probe(_deep(130, resolution=8)))
    assert math.log(torch.finfo(torch.float64).max) < value < math.inf


def test_synflow_known_answer_abs_of_every_parameter_and_buffer_in_eval_mode() -> None:
    # R = 1^T |W2| BN(|W1| 1), BN in eval: |gamma| / sqrt(|running var| + eps); each weight layer adds R: 2R
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[1].weight.fill_(-2.0)
        net[1].running_var.fill_(4.0)
    w1, w2 = (layer.weight.detach().abs().double().numpy() for layer in (net[0], net[3]))
    total = 2 * (w2 @ (2 / math.sqrt(4 + 1e-5) * (w1 @ np.ones(4)))).sum()
    assert synflow_score(net, (4,)) == pytest.approx(math.log(total), rel=1e-12)


def test_grad_norm_and_snip_known_answer_on_one_linear_layer() -> None:
    # L = mean cross-entropy of X W^T: dL/dW = (softmax(X W^T) - onehot(y))^T X / N
    torch.manual_seed(0)
    layer, inputs, labels = nn.Linear(5, 3, bias=False), torch.randn(4, 5), torch.tensor([0, 2, 1, 2])
    x, w = inputs.double().numpy(), layer.weight.detach().double().numpy()
    logits = x @ w.T
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    grad = (softmax - np.eye(3)[labels.numpy()]).T @ x / 4
    assert grad_norm_score(layer, inputs, labels) == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    assert snip_score(layer, inputs, labels) == pytest.approx(np.abs(w * grad).sum(), rel=1e-5)


def test_jacob_cov_known_answer_and_an_independent_implementation(tiny_v2: Genotype) -> None:
    # a linear network has one Jacobian row for every image: correlation all ones, eigenvalues N, 0, ..., 0
    net, inputs = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), torch.randn(4, 3, 2, 2)
    expected = -(math.log(4 + K) + 1 / (4 + K)) - 3 * (math.log(K) + 1 / K)
    assert jacob_cov_score(net, inputs) == pytest.approx(expected, rel=1e-9)
    # Mellor et al.'s code: backward of ones, np.corrcoef, np.linalg.eig
    probe = _probe(tiny_v2, batch=8)
    model, images = probe.model().train(), probe.inputs.clone().requires_grad_(True)
    output = model(images)
    output.backward(torch.ones_like(output))
    assert images.grad is not None
    values = np.linalg.eig(np.corrcoef(images.grad.flatten(1).double().numpy()))[0].real
    assert jacob_cov(probe) == pytest.approx(-np.sum(np.log(values + K) + 1 / (values + K)), rel=1e-6)


def test_jacobian_score_handles_constant_rows_and_peaks_for_uncorrelated_rows() -> None:
    orthogonal = torch.tensor([[1.0, -1, 0, 0], [0, 0, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])
    assert jacobian_score(orthogonal[:2]) == pytest.approx(-2 * (math.log(1 + K) + 1 / (1 + K)))
    with_constant = torch.stack([orthogonal[0], torch.full((4,), 3.0), orthogonal[1]])
    assert jacobian_score(with_constant) == pytest.approx(-3 * (math.log(1 + K) + 1 / (1 + K)))
    correlated = jacobian_score(torch.stack([orthogonal[0], orthogonal[0] * 2 + 0.01 * orthogonal[1]]))
    assert correlated < jacobian_score(orthogonal[:2]) - 1000


def test_non_finite_scores_raise(monkeypatch: pytest.MonkeyPatch, tiny_v2: Genotype) -> None:
    monkeypatch.setitem(proxies._SCORERS, "snip", lambda probe: float("nan"))
    with pytest.raises(ProxyError, match=f"proxy snip of {tiny_v2.arch_id} is nan"):
        compute_proxies(tiny_v2, ["snip"])


# ---- data ------------------------------------------------------------------------------------------------
def test_data_batch_and_fitted_genotype_are_used_and_noise_is_said(shapes_dir: Path) -> None:
    data = load_dataset(shapes_dir)
    baseline = BASELINES["shufflenet_v2_x0_5"].genotype
    names = ["naswot", "synflow", "mflops"]
    with_data = compute_proxies(baseline, names, data=data)
    fitted = data.fit(baseline)
    assert with_data["mflops"].value == pytest.approx(count_cost(fitted).mflops)
    assert with_data["mflops"].value != pytest.approx(count_cost(baseline).mflops)
    images = Probe(fitted, 0, *data.sample_batch(8, 0))
    assert with_data["naswot"].value == naswot(images)  # the data's images, not noise
    assert with_data["naswot"].inputs == f"8 images of imagefolder at {shapes_dir}, seed 0"
    assert not any(score.on_noise for score in with_data.values())
    on_noise = compute_proxies(fitted, names)
    assert on_noise["naswot"].value != with_data["naswot"].value and on_noise["naswot"].on_noise
    assert on_noise["naswot"].inputs == "seeded Gaussian noise: 8 images, seed 0, random labels"
    assert on_noise["synflow"].value == with_data["synflow"].value and not on_noise["synflow"].on_noise
    assert "all-ones" in on_noise["synflow"].inputs and on_noise["mflops"].inputs.startswith("none")


def test_scores_grow_with_width_across_unit_types(tiny_v2: Genotype, tiny_v1: Genotype) -> None:
    # One definition for V1 and V2 and every width: doubling every width must raise the size-driven scores.
    names = ["naswot", "relu_count", "snip"]
    for genotype in (tiny_v2, tiny_v1):
        wide = Genotype(
            genotype.stem_channels,
            tuple(
                StageGene(s.unit, s.repeats, 2 * s.out_channels, s.groups, residual=s.residual) for s in genotype.stages
            ),
            head_channels=2 * genotype.head_channels,
            stem_stride=1,
            resolution=32,
            num_classes=10,
        )
        narrow, broad = compute_proxies(genotype, names), compute_proxies(wide, names)
        assert all(broad[name].value > narrow[name].value for name in names)


def test_rank_correlation() -> None:
    perfect = rank_correlation("x", [1, 2, 3, 4], [10, 20, 30, 40])
    assert (perfect.kendall_tau, perfect.spearman_rho, perfect.n) == (pytest.approx(1), pytest.approx(1), 4)
    assert rank_correlation("x", [4, 3, 2, 1], [10, 20, 30, 40]).kendall_tau == pytest.approx(-1)
    assert rank_correlation("x", [1, 1, 1, 1], [10, 20, 30, 40]).kendall_tau == 0.0


def test_validation_against_the_papers_table_agrees_with_the_independent_naswot() -> None:
    validation = validate_against_paper(["naswot", "mflops"])
    truth = dict(zip(validation.architectures, validation.truth, strict=True))
    assert len(truth) >= 27 and truth["shufflenet_v1_g1_x1_0"] == pytest.approx(100 - 33.6)
    genotypes = [BASELINES[name].genotype for name in validation.architectures]
    independent = []
    for genotype in genotypes:  # the reference hooks nn.ReLU modules: every ReLU of these networks is one
        probe = _probe(genotype, batch=8)
        independent.append(_module_hook_naswot(probe.model().train(), probe.inputs)[0])
    assert validation.scores["naswot"] == pytest.approx(independent, rel=1e-9)
    mflops = [count_cost(genotype).mflops for genotype in genotypes]
    result = {c.proxy: c for c in validation.correlations}
    for name, scores in (("naswot", independent), ("mflops", mflops)):
        expected = rank_correlation(name, scores, validation.truth)
        assert (result[name].kendall_tau, result[name].spearman_rho) == pytest.approx(
            (expected.kendall_tau, expected.spearman_rho), abs=1e-12
        )


def test_validate_against_training_samples_distinct_architectures(shapes_dir: Path) -> None:
    data = load_dataset(shapes_dir)
    validation = validate_against_training(
        data, 3, ["naswot", "params", "mflops"], budget_mflops=1.0, train_config=TrainConfig(steps=4, batch_size=16)
    )
    assert validation.against == "train" and len(set(validation.architectures)) == 3
    assert all(0 <= accuracy <= 100 for accuracy in validation.truth)
    assert all(Genotype.from_string(arch).resolution == 32 for arch in validation.architectures)
    table = validation.to_dict()
    assert set(table["correlations"]) == {"naswot", "params", "mflops"} and table["n"] == 3
