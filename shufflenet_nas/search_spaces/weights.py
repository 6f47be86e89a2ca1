"""Loading a state dict into a built network by key, strictly, with one-line errors.

The networks carry torchvision's ShuffleNetV2 module names, so torchvision's checkpoints of the V2 baselines
load as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.search_spaces.genotype import Genotype

Weights = str | Path | Mapping[str, Any]
_WRAPPER_KEYS = ("state_dict", "model")  # where training scripts nest the state dict in a checkpoint


def load_weights(model: nn.Module, weights: Weights, arch: str) -> None:
    """Load ``weights`` (a file saved with ``torch.save``, or a state dict) into ``model``, the network of
    ``arch``; every key must match, with its shape. A checkpoint dict holding the state dict under
    ``state_dict`` or ``model`` works too."""
    given = f"weights={str(weights)!r}" if isinstance(weights, str | Path) else "weights"
    state = _state_dict(_read(weights) if isinstance(weights, str | Path) else weights, given)
    expected = model.state_dict()
    # BatchNorm's step counter is optional, as torch treats it for old state dicts: a missing one stays 0.
    missing = [key for key in expected if key not in state and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        first = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise ShuffleNetNASError(
            f"{given} do not fit architecture {arch}: {first} "
            f"({len(missing)} missing, {len(unexpected)} unexpected of {len(expected)} keys)"
        )
    for key, tensor in expected.items():
        if key in state and state[key].shape != tensor.shape:
            raise ShuffleNetNASError(
                f"{given} do not fit architecture {arch}: {key} has shape {tuple(tensor.shape)} in the network, "
                f"{tuple(state[key].shape)} in the weights"
            )
    model.load_state_dict(state, strict=False)


def genotype_of_weights(path: str | Path) -> Genotype:
    """The genotype stored beside the state dict in a weights file written by ``train``; ``ValueError`` for a
    file without one (a bare state dict says nothing about the architecture)."""
    try:
        data = _read(path)
    except ShuffleNetNASError as error:  # named as an architecture file here, not as `weights`
        raise InvalidArgumentError(str(error).replace(f"weights={str(path)!r}", str(path))) from None
    text = data.get("genotype") if isinstance(data, Mapping) else None
    if not isinstance(text, str):
        raise InvalidArgumentError(
            f"{path} holds no genotype (only weights written by `train` carry one); give the architecture "
            "and pass the file as weights"
        )
    return Genotype.from_string(text)


def _read(path: str | Path) -> object:
    if not Path(path).is_file():
        raise InvalidArgumentError(f"weights={str(path)!r}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises pickle, zip and runtime errors of many kinds
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        reason = reason.split(". ")[0]  # torch's advice (weights_only=False, ...) is not for this file
        raise ShuffleNetNASError(f"weights={str(path)!r}: cannot load it as a torch state dict ({reason})") from None


def _state_dict(data: object, given: str) -> Mapping[str, torch.Tensor]:
    """The state dict in ``data``: ``data`` itself, or its ``state_dict`` / ``model`` entry."""
    if isinstance(data, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(data.get(key), Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ShuffleNetNASError(
            f"{given} holds no state dict: expected a mapping of names to tensors, or a dict holding one "
            f"under {' or '.join(map(repr, _WRAPPER_KEYS))}"
        )
    return data
