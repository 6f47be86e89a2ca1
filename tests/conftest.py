"""Shared fixtures: small, fast architectures and a deterministic torch setup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from shufflenet_nas.search_spaces import Genotype, StageGene

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Latency tables and speed anchors in a temporary folder, never ~/.cache; anchors timed briefly."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHUFFLENET_NAS_CACHE_DIR", str(path))
        patch.setattr("shufflenet_nas.nas.latency._normalisation.ANCHOR_TIME_S", 0.2)
        yield path


@pytest.fixture
def tiny_v2() -> Genotype:
    stages = (StageGene("v2", 2, 16), StageGene("v2", 2, 32), StageGene("v2", 2, 64))
    return Genotype(8, stages, head_channels=64, stem_stride=1, resolution=32, num_classes=10)


@pytest.fixture
def tiny_v1() -> Genotype:
    stages = tuple(StageGene("v1", 2, c, groups=2, residual=True) for c in (24, 48, 96))
    return Genotype(8, stages, head_channels=0, stem_stride=1, resolution=32, num_classes=10)


SHAPE_CLASSES = ("checker", "disc", "hstripes", "vstripes")


def _shape_image(kind: str, rng: np.random.Generator, side: int = 32) -> np.ndarray:
    """One side x side RGB image of a class's pattern with random colours, phase, size and noise."""
    y, x = np.mgrid[0:side, 0:side]
    period = int(rng.integers(4, 9))
    phase = int(rng.integers(0, period))
    if kind == "hstripes":
        mask = ((y + phase) // (period // 2 + 1)) % 2 == 0
    elif kind == "vstripes":
        mask = ((x + phase) // (period // 2 + 1)) % 2 == 0
    elif kind == "checker":
        mask = (((x + phase) // period) + ((y + phase) // period)) % 2 == 0
    else:
        cy, cx = rng.integers(10, side - 10, size=2)
        mask = (y - cy) ** 2 + (x - cx) ** 2 <= int(rng.integers(5, 10)) ** 2
    foreground, background = rng.integers(0, 256, size=(2, 3))
    image = np.where(mask[..., None], foreground, background) + rng.normal(0, 12, (side, side, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def make_shapes_dataset(root: Path, per_class: int = 64, seed: int = 0) -> Path:
    """An ImageFolder of 32x32 PNGs: one folder per pattern class (stripes, checkerboard, disc)."""
    rng = np.random.default_rng(seed)
    for kind in SHAPE_CLASSES:
        (root / kind).mkdir(parents=True)
        for index in range(per_class):
            Image.fromarray(_shape_image(kind, rng)).save(root / kind / f"{index:03d}.png")
    return root


def make_stripes_dataset(root: Path, per_class: int = 150, seed: int = 0) -> Path:
    """A trivially separable ImageFolder: horizontal vs vertical stripes (32x32, random colours and period)."""
    rng = np.random.default_rng(seed)
    for kind in ("hstripes", "vstripes"):
        (root / kind).mkdir(parents=True)
        for index in range(per_class):
            Image.fromarray(_shape_image(kind, rng)).save(root / kind / f"{index:03d}.png")
    return root


@pytest.fixture(scope="session")
def stripes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two clearly different patterns, 150 images each."""
    return make_stripes_dataset(tmp_path_factory.mktemp("stripes"))


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small learnable ImageFolder dataset: 4 classes x 64 images of 32x32 patterns."""
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server on loopback for the session (see tests/postgres.py)."""
    from tests.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_db(postgres_url: str, request: pytest.FixtureRequest) -> str:
    """A new, empty database on that server for one test."""
    from tests.postgres import fresh_database

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    return fresh_database(postgres_url, name)
