"""Checkpoints load by key: torchvision's ShuffleNetV2 layout, rebuilt here, into the V2 baselines."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from benchmarks.torchvision_shufflenet_v2 import TorchvisionShuffleNetV2
from shufflenet_nas import InvalidArgumentError, ShuffleNetNASError, build_model

_WIDTHS = {"shufflenet_v2_x0_5": [24, 48, 96, 192, 1024], "shufflenet_v2_x1_0": [24, 116, 232, 464, 1024]}


def _torchvision_model(name: str) -> TorchvisionShuffleNetV2:
    """A torchvision-layout model with random weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(1)
    model = TorchvisionShuffleNetV2(_WIDTHS[name])
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("name", sorted(_WIDTHS))
def test_torchvision_state_dict_loads_by_key_and_gives_the_same_outputs(name: str, tmp_path: Path) -> None:
    reference = _torchvision_model(name)
    path = tmp_path / "tv.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(name, weights=path).eval()
    assert list(model.state_dict()) == list(reference.state_dict())  # the same keys in the same order
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), reference(x))


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_a_checkpoint_dict_holding_the_state_dict_loads(wrapper: str, tmp_path: Path) -> None:
    reference = _torchvision_model("shufflenet_v2_x0_5")
    path = tmp_path / "checkpoint.pt"
    torch.save({wrapper: reference.state_dict(), "epoch": 90}, path)
    from_file = build_model("shufflenet_v2_x0_5", weights=path)
    from_dict = build_model("shufflenet_v2_x0_5", weights={wrapper: reference.state_dict()})
    for model in (from_file, from_dict):
        assert torch.equal(model.fc.weight, reference.fc.weight)
        assert torch.equal(model.stage3[5].branch2[6].running_var, reference.stage3[5].branch2[6].running_var)


def _error(weights: object, arch: str = "shufflenet_v2_x0_5") -> str:
    with pytest.raises(ShuffleNetNASError) as error:
        build_model(arch, weights=weights)  # type: ignore[arg-type]
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_missing_or_unexpected_key_is_named_with_the_architecture() -> None:
    state = _torchvision_model("shufflenet_v2_x0_5").state_dict()
    del state["conv5.1.running_mean"]
    assert _error(state) == (
        "weights do not fit architecture shufflenet_v2_x0_5: missing key 'conv5.1.running_mean' "
        "(1 missing, 0 unexpected of 338 keys)"
    )
    state = _torchvision_model("shufflenet_v2_x0_5").state_dict() | {"classifier.weight": torch.zeros(1)}
    assert "unexpected key 'classifier.weight' (0 missing, 1 unexpected" in _error(state)


def test_a_shape_mismatch_names_the_key_and_both_shapes(tmp_path: Path) -> None:
    path = tmp_path / "x1_0.pt"
    torch.save(_torchvision_model("shufflenet_v2_x1_0").state_dict(), path)
    assert _error(path) == (
        f"weights={str(path)!r} do not fit architecture shufflenet_v2_x0_5: stage2.0.branch1.2.weight has shape "
        "(24, 24, 1, 1) in the network, (58, 24, 1, 1) in the weights"
    )


def test_weights_of_another_family_do_not_load() -> None:
    state = _torchvision_model("shufflenet_v2_x0_5").state_dict()
    assert "architecture shufflenet_v1_g3_x0_5: missing key" in _error(state, "shufflenet_v1_g3_x0_5")


def test_an_unreadable_or_missing_file_is_named(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert _error(garbage).startswith(f"weights={str(garbage)!r}: cannot load it as a torch state dict (")
    with pytest.raises(InvalidArgumentError, match="no such file"):
        build_model("shufflenet_v2_x0_5", weights=tmp_path / "absent.pt")
    listed = tmp_path / "list.pt"
    torch.save([1, 2, 3], listed)
    assert _error(listed).startswith(f"weights={str(listed)!r} holds no state dict")


def test_an_old_batchnorm_state_dict_without_num_batches_tracked_loads_as_torch_loads_it(tmp_path: Path) -> None:
    source = build_model("shufflenet_v2_x0_5").eval()
    state = source.state_dict()
    old = type(state)((key, value) for key, value in state.items() if not key.endswith("num_batches_tracked"))
    old._metadata = {key: {**meta, "version": 1} for key, meta in state._metadata.items()}  # type: ignore[attr-defined]
    torch.save(old, tmp_path / "old.pt")
    loaded = build_model("shufflenet_v2_x0_5", weights=tmp_path / "old.pt").eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(loaded(x), source(x))
