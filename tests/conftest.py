"""Shared fixtures: small, fast architectures and a deterministic torch setup."""

from __future__ import annotations

import pytest
import torch

from shufflenet_nas.search_spaces import Genotype, StageGene

torch.set_num_threads(1)


@pytest.fixture
def tiny_v2() -> Genotype:
    stages = (StageGene("v2", 2, 16), StageGene("v2", 2, 32), StageGene("v2", 2, 64))
    return Genotype(8, stages, head_channels=64, stem_stride=1, resolution=32, num_classes=10)


@pytest.fixture
def tiny_v1() -> Genotype:
    stages = tuple(StageGene("v1", 2, c, groups=2, residual=True) for c in (24, 48, 96))
    return Genotype(8, stages, head_channels=0, stem_stride=1, resolution=32, num_classes=10)
