"""Image datasets read from disk for the proxies: ImageFolder directories and CIFAR-10/100 python pickles.

Nothing is downloaded. A dataset is decoded once into uint8 tensors (N, 3, R, R) with a train and a
validation split, so a search can reuse it for every trial:

- ImageFolder: ``PATH/<class>/<image>``; 20% of each class (a fixed, seeded choice) is held out for
  validation. ``PATH/train/<class>/...`` beside ``PATH/val/<class>/...`` (or ``test``) uses those splits.
  Images are resized (shorter side, bilinear) and centre-cropped to one square resolution: the most common
  shorter side unless one is given.
- CIFAR-10 (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) and CIFAR-100 (``train``, ``test``), the
  python pickles from the dataset's site; ``PATH`` may also be the folder that holds ``cifar-10-batches-py``
  or ``cifar-100-python``. The pickles are read with an unpickler that only builds numpy arrays.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.spaces import stem_stride_for

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
VAL_FRACTION = 0.2
_SPLIT_SEED = 0
_EXPECTED = "an ImageFolder (class subfolders of images) or CIFAR-10/100 python files"
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_SIDE = 32


def _named(folder: Path) -> str:
    """``data='<folder>'``: how a message names the dataset."""
    return f"data={str(folder)!r}"


class DatasetError(ShuffleNetNASError):
    """A dataset on disk is missing pieces or cannot be read."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image dataset in memory: uint8 images (N, 3, R, R), int64 labels, a train and a val split."""

    path: Path
    format: str  # "imagefolder", "cifar10" or "cifar100"
    classes: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    mean: tuple[float, float, float]  # per channel, of the training images, on a 0..1 scale
    std: tuple[float, float, float]

    @property
    def resolution(self) -> int:
        return int(self.train_images.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        """One line: format, path, classes, split sizes and resolution."""
        return (
            f"{self.format} at {self.path}: {self.num_classes} classes, {len(self.train_labels)} train / "
            f"{len(self.val_labels)} val images, {self.resolution}x{self.resolution}"
        )

    def to_inputs(self, images: torch.Tensor) -> torch.Tensor:
        """Images on a 0..255 scale (uint8, or float after augmentation) -> float32 network inputs on their
        device, normalised by the training split's mean and std."""
        mean = torch.tensor(self.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, 3, 1, 1)
        return (images.float() / 255 - mean) / std

    def sample_batch(self, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed batch of training images and labels: the same ``seed`` always gives the same batch."""
        generator = torch.Generator().manual_seed(seed)
        count = len(self.train_labels)
        index = torch.randperm(count, generator=generator)[: min(size, count)]
        return self.to_inputs(self.train_images[index]), self.train_labels[index]

    def fit(self, genotype: Genotype) -> Genotype:
        """``genotype`` at this dataset's resolution and class count, with the stem stride that suits it."""
        if genotype.resolution == self.resolution and genotype.num_classes == self.num_classes:
            return genotype
        try:
            return replace(
                genotype,
                resolution=self.resolution,
                num_classes=self.num_classes,
                stem_stride=stem_stride_for(self.resolution),
            )
        except ValueError as error:
            raise InvalidArgumentError(f"{genotype.arch_id} does not fit {_named(self.path)}: {error}") from None


def load_dataset(data: Path | str, resolution: int | None = None) -> Dataset:
    """Read an ImageFolder or CIFAR-10/100 python directory; errors are one line naming the path.

    ``resolution`` resizes ImageFolder images to that square size (CIFAR stays at 32x32).
    """
    root = Path(data).expanduser()
    if not root.exists():
        raise InvalidArgumentError(f"{_named(root)}: no such directory; expected {_EXPECTED}")
    if not root.is_dir():
        raise InvalidArgumentError(f"{_named(root)}: not a directory; expected {_EXPECTED}")
    if resolution is not None and resolution < 8:
        raise InvalidArgumentError(f"resolution={resolution} is too small; use at least 8 pixels")
    for folder in (root, root / "cifar-10-batches-py", root / "cifar-100-python"):
        cifar10 = (folder / "data_batch_1").is_file() or (folder / "test_batch").is_file()
        if cifar10 or ((folder / "train").is_file() and (folder / "test").is_file()):
            if resolution not in (None, _CIFAR_SIDE):
                warnings.warn(
                    f"resolution={resolution} is ignored: {_named(root)} is CIFAR, {_CIFAR_SIDE}x{_CIFAR_SIDE}",
                    UserWarning,
                    stacklevel=2,
                )
            return _cifar10(folder) if cifar10 else _cifar100(folder)
    return _image_folder(root, resolution)


def _dataset(
    path: Path,
    fmt: str,
    classes: Sequence[str],
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
) -> Dataset:
    """Assemble a Dataset from uint8 (N, 3, R, R) arrays and integer labels."""
    train_images = torch.from_numpy(np.ascontiguousarray(train[0]))
    scaled = train_images.double() / 255
    mean = scaled.mean(dim=(0, 2, 3))
    std = scaled.std(dim=(0, 2, 3)).clamp_min(1e-3)  # a constant channel must not divide by zero
    return Dataset(
        path,
        fmt,
        tuple(classes),
        train_images,
        torch.from_numpy(np.asarray(train[1], dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(val[0])),
        torch.from_numpy(np.asarray(val[1], dtype=np.int64)),
        tuple(float(v) for v in mean),  # type: ignore[arg-type]
        tuple(float(v) for v in std),  # type: ignore[arg-type]
    )


# ---- ImageFolder --------------------------------------------------------------------------------------
def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _image_folder(root: Path, resolution: int | None) -> Dataset:
    val_root = next((root / name for name in ("val", "test") if (root / name).is_dir()), None)
    if not ((root / "train").is_dir() and _class_folders(root / "train")):
        val_root = None
    train_root = root if val_root is None else root / "train"
    folders = _class_folders(train_root)
    if len(folders) < 2:
        found = f"{len(folders)} class subfolder" + ("" if len(folders) == 1 else "s")
        raise DatasetError(f"{_named(root)}: found {found}, need 2 or more; expected {_EXPECTED}")
    classes = [folder.name for folder in folders]
    files = {name: _images_in(train_root / name) for name in classes}
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise DatasetError(
            f"{_named(root)}: class folder {empty[0]!r} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
            f"expected {_EXPECTED}"
        )
    if val_root is not None:
        unknown = sorted({f.name for f in _class_folders(val_root)} - set(classes))
        if unknown:
            raise DatasetError(f"{_named(root)}: {val_root.name}/ has class {unknown[0]!r} that train/ lacks")
        train_files = [(path, label) for label, name in enumerate(classes) for path in files[name]]
        val_files = [
            (path, label)
            for label, name in enumerate(classes)
            if (val_root / name).is_dir()
            for path in _images_in(val_root / name)
        ]
    else:
        train_files, val_files = _hold_out(files)
    side = resolution or _common_side([path for path, _ in train_files + val_files], root)
    return _dataset(
        root, "imagefolder", classes, _decode_all(train_files, side, root), _decode_all(val_files, side, root)
    )


def _hold_out(files: dict[str, list[Path]]) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """A fixed, seeded ``VAL_FRACTION`` of every class (at least one image where a class has two) for validation."""
    rng = np.random.default_rng(_SPLIT_SEED)
    train: list[tuple[Path, int]] = []
    val: list[tuple[Path, int]] = []
    for label, paths in enumerate(files.values()):
        order = rng.permutation(len(paths))
        held = max(1, round(len(paths) * VAL_FRACTION)) if len(paths) > 1 else 0
        val += [(paths[i], label) for i in sorted(order[:held])]
        train += [(paths[i], label) for i in sorted(order[held:])]
    return train, val


def _open(path: Path, root: Path) -> Image.Image:
    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError):
        raise DatasetError(f"{_named(root)}: cannot read image {path}") from None


def _common_side(paths: list[Path], root: Path) -> int:
    """The most common shorter side among the images (read from their headers only)."""
    sides: Counter[int] = Counter()
    for path in paths:
        with _open(path, root) as image:
            sides[min(image.size)] += 1
    side = sides.most_common(1)[0][0]
    if side < 8:
        raise DatasetError(
            f"{_named(root)}: most images are {side} pixels across; need at least 8 (or set `resolution`)"
        )
    return side


def _decode_all(files: list[tuple[Path, int]], side: int, root: Path) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((len(files), 3, side, side), dtype=np.uint8)
    for index, (path, _) in enumerate(files):
        try:
            with _open(path, root) as image:
                images[index] = _square(_rgb(image), side).transpose(2, 0, 1)
        except OSError:
            raise DatasetError(f"{_named(root)}: cannot decode image {path}") from None
    return images, np.array([label for _, label in files], dtype=np.int64)


def _rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB. 16-bit and 32-bit greyscale are scaled to 0..255 first (Pillow's own conversion
    clips them, turning most pixels white)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or pixels.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(np.round(pixels * 255 / top), 0, 255).astype(np.uint8))
    return image.convert("RGB")


def _square(image: Image.Image, side: int) -> np.ndarray:
    """Resize the shorter side to ``side`` (bilinear) and centre-crop to side x side."""
    width, height = image.size
    if (width, height) != (side, side):
        scale = side / min(width, height)
        width, height = max(side, round(width * scale)), max(side, round(height * scale))
        image = image.resize((width, height), Image.Resampling.BILINEAR)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    return np.asarray(image, dtype=np.uint8)


# ---- CIFAR python pickles -----------------------------------------------------------------------------
class _ArrayUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings and numpy arrays; refuses every other global (pickles can run code)."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict[bytes, Any]:
    try:
        data = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except FileNotFoundError:
        raise DatasetError(
            f"{_named(path.parent)}: {path.name} is missing (CIFAR-10 has data_batch_1..5 and test_batch, "
            "CIFAR-100 train and test)"
        ) from None
    except Exception as error:
        raise DatasetError(f"{_named(path.parent)}: {path.name} is not a CIFAR python pickle ({error})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{_named(path.parent)}: {path.name} holds no dict; expected a CIFAR python pickle")
    return data


def _cifar_split(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    data = _read_pickle(path)
    images = np.asarray(data.get(b"data"))
    labels = np.asarray(data.get(label_key, []), dtype=np.int64)
    pixels = 3 * _CIFAR_SIDE * _CIFAR_SIDE
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != pixels or len(labels) != len(images):
        raise DatasetError(
            f"{_named(path.parent)}: {path.name} must hold b'data' as uint8 (N, {pixels}) and one "
            f"b'{label_key.decode()}' entry per row; got {images.dtype} {images.shape} and {len(labels)} labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{_named(path.parent)}: {path.name} has labels outside 0..{num_classes - 1}")
    return images.reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE), labels


def _cifar_names(path: Path, key: bytes, count: int) -> list[str]:
    """Class names from the meta pickle, or the label numbers when it is absent."""
    if not path.is_file():
        return [str(i) for i in range(count)]
    names = _read_pickle(path).get(key, [])
    if len(names) != count:
        raise DatasetError(f"{_named(path.parent)}: {path.name} lists {len(names)} class names; expected {count}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _cifar(folder: Path, fmt: str, train_files: Sequence[str], test_file: str, key: bytes, count: int) -> Dataset:
    meta, names_key = ("batches.meta", b"label_names") if fmt == "cifar10" else ("meta", b"fine_label_names")
    parts = [_cifar_split(folder / name, key, count) for name in train_files]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    val = _cifar_split(folder / test_file, key, count)
    return _dataset(folder, fmt, _cifar_names(folder / meta, names_key, count), train, val)


def _cifar10(folder: Path) -> Dataset:
    return _cifar(folder, "cifar10", _CIFAR10_TRAIN, "test_batch", b"labels", 10)


def _cifar100(folder: Path) -> Dataset:
    return _cifar(folder, "cifar100", ("train",), "test", b"fine_labels", 100)
