"""Architectures as data (genotypes, search space, the papers' baselines) and as torch modules."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from shufflenet_nas.search_spaces.baselines import BASELINES, Baseline, get_baseline
from shufflenet_nas.search_spaces.builder import ShuffleNet, build
from shufflenet_nas.search_spaces.genotype import Genotype, StageGene
from shufflenet_nas.search_spaces.spaces import SearchSpace

__all__ = [
    "BASELINES",
    "Baseline",
    "Genotype",
    "SearchSpace",
    "ShuffleNet",
    "StageGene",
    "build",
    "build_model",
    "get_baseline",
    "resolve_arch",
]


def resolve_arch(arch: str | Path | Genotype) -> Genotype:
    """A genotype from a baseline name, a genotype string, a JSON file, or a Genotype.

    Raises ``ValueError`` naming what was given and the accepted forms.
    """
    if isinstance(arch, Genotype):
        return arch
    text = str(arch).strip()
    if text in BASELINES:
        return BASELINES[text].genotype
    if text.startswith("stem"):
        return Genotype.from_string(text)
    path = Path(text)
    if path.is_file():
        try:
            return Genotype.from_json(path.read_text())
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    if text.endswith(".json"):
        raise ValueError(f"architecture file {text} does not exist; check the path")
    raise ValueError(
        f"{text!r} is not a baseline name, a genotype string (stem...) or a JSON file; "
        "run `shufflenet-nas baselines` for the names"
    )


def build_model(arch: str | Path | Genotype) -> nn.Module:
    """Build a freshly initialised network from a baseline name, genotype string, JSON file or Genotype."""
    return build(resolve_arch(arch))
