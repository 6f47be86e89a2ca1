from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from shufflenet_nas import InvalidArgumentError, load_dataset
from shufflenet_nas.nas.data import DatasetError
from shufflenet_nas.search_spaces import BASELINES


def test_image_folder_holds_out_a_fifth_of_every_class(shapes_dir: Path) -> None:
    data = load_dataset(shapes_dir)
    assert data.format == "imagefolder" and data.classes == ("checker", "disc", "hstripes", "vstripes")
    assert data.resolution == 32 and data.num_classes == 4
    assert data.train_images.dtype == torch.uint8 and data.train_images.shape == (204, 3, 32, 32)
    assert torch.bincount(data.val_labels).tolist() == [13, 13, 13, 13]  # round(64 * 0.2)
    assert torch.bincount(data.train_labels).tolist() == [51, 51, 51, 51]
    # the split is fixed: a second read gives the same images in the same order
    again = load_dataset(shapes_dir)
    assert torch.equal(again.val_images, data.val_images) and torch.equal(again.train_labels, data.train_labels)
    # no image is in both splits
    train_rows = {bytes(image.numpy()) for image in data.train_images}
    assert not any(bytes(image.numpy()) in train_rows for image in data.val_images)
    assert "4 classes, 204 train / 52 val images, 32x32" in data.describe()


def test_inputs_are_normalised_by_the_training_split(shapes_dir: Path) -> None:
    data = load_dataset(shapes_dir)
    inputs = data.to_inputs(data.train_images)
    assert inputs.dtype == torch.float32
    assert inputs.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (inputs.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3
    images, labels = data.sample_batch(8, seed=3)
    same_images, same_labels = data.sample_batch(8, seed=3)
    assert torch.equal(images, same_images) and torch.equal(labels, same_labels)
    assert not torch.equal(data.sample_batch(8, seed=4)[0], images)


def test_fit_adapts_resolution_classes_and_stem(shapes_dir: Path) -> None:
    data = load_dataset(shapes_dir)
    fitted = data.fit(BASELINES["shufflenet_v2_x1_0"].genotype)
    assert (fitted.resolution, fitted.num_classes, fitted.stem_stride) == (32, 4, 1)
    assert data.fit(fitted) is fitted


def test_mixed_sizes_are_resized_to_the_most_common_side(tmp_path: Path) -> None:
    sizes = {"a": [(40, 40), (40, 60), (40, 40)], "b": [(40, 40), (20, 20), (80, 40)]}
    for name, shapes in sizes.items():
        (tmp_path / name).mkdir()
        for index, (width, height) in enumerate(shapes):
            Image.new("RGB", (width, height), (index * 80, 0, 0)).save(tmp_path / name / f"{index}.png")
    assert load_dataset(tmp_path).resolution == 40
    data = load_dataset(tmp_path, resolution=16)
    assert data.resolution == 16 and len(data.train_labels) + len(data.val_labels) == 6


def test_train_and_val_subfolders_are_used_as_the_split(tmp_path: Path) -> None:
    for split, count in (("train", 5), ("val", 2)):
        for name in ("cat", "dog"):
            (tmp_path / split / name).mkdir(parents=True)
            for index in range(count):
                Image.new("RGB", (12, 12)).save(tmp_path / split / name / f"{index}.jpg")
    data = load_dataset(tmp_path)
    assert data.classes == ("cat", "dog")
    assert (len(data.train_labels), len(data.val_labels)) == (10, 4)


def _write_pickle(path: Path, data: object) -> None:
    path.write_bytes(pickle.dumps(data))


def _cifar_rows(count: int, classes: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 3072), dtype=np.uint8), [i % classes for i in range(count)]


def make_cifar10(folder: Path, per_batch: int = 6) -> Path:
    folder.mkdir(parents=True)
    for index, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        rows, labels = _cifar_rows(per_batch, 10, index)
        _write_pickle(folder / name, {b"data": rows, b"labels": labels, b"batch_label": b"x"})
    _write_pickle(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    return folder


def test_cifar10_python_directory(tmp_path: Path) -> None:
    folder = make_cifar10(tmp_path / "cifar-10-batches-py")
    for path in (folder, tmp_path):  # the folder itself or the folder that holds it
        data = load_dataset(path)
        assert data.format == "cifar10" and data.classes[:2] == ("c0", "c1") and data.num_classes == 10
        assert data.train_images.shape == (30, 3, 32, 32) and len(data.val_labels) == 6
    rows, _ = _cifar_rows(6, 10, 0)
    assert torch.equal(data.train_images[0], torch.from_numpy(rows[0].reshape(3, 32, 32)))


def test_cifar100_python_directory(tmp_path: Path) -> None:
    for name, count in (("train", 20), ("test", 5)):
        rows, labels = _cifar_rows(count, 100, count)
        _write_pickle(tmp_path / name, {b"data": rows, b"fine_labels": [3 * label for label in labels]})
    data = load_dataset(tmp_path)
    assert data.format == "cifar100" and data.num_classes == 100 and data.classes[42] == "42"
    assert len(data.train_labels) == 20 and data.val_labels.max() == 12


def _error(path: Path, kind: type[Exception] = DatasetError) -> str:
    with pytest.raises(kind) as info:
        load_dataset(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert message.startswith("data='")  # the parameter, as the Python API spells it
    return message


def test_missing_or_malformed_datasets_are_one_line_errors_naming_the_path(tmp_path: Path) -> None:
    assert "no such directory; expected an ImageFolder" in _error(tmp_path / "nowhere", InvalidArgumentError)
    (tmp_path / "file.txt").write_text("x")
    assert "not a directory" in _error(tmp_path / "file.txt", InvalidArgumentError)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "found 0 class subfolders" in _error(empty)
    (empty / "only").mkdir()
    Image.new("RGB", (8, 8)).save(empty / "only" / "a.png")
    assert "found 1 class subfolder, need 2" in _error(empty)
    (empty / "other").mkdir()
    (empty / "other" / "notes.txt").write_text("x")
    assert "class folder 'other' holds no images" in _error(empty)
    (empty / "other" / "broken.png").write_bytes(b"not a png")
    assert "cannot read image" in _error(empty)


def test_incomplete_or_bad_cifar_pickles_are_named(tmp_path: Path) -> None:
    folder = make_cifar10(tmp_path / "c10")
    (folder / "data_batch_3").unlink()
    assert "data_batch_3 is missing" in _error(folder)
    _write_pickle(folder / "data_batch_3", {b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4})
    assert "must hold b'data' as uint8 (N, 3072)" in _error(folder)
    _write_pickle(folder / "data_batch_3", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    assert "labels outside 0..9" in _error(folder)


def test_cifar_pickles_cannot_run_code(tmp_path: Path) -> None:
    folder = make_cifar10(tmp_path / "c10")

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    _write_pickle(folder / "test_batch", Exploit())
    message = _error(folder)
    assert "test_batch is not a CIFAR python pickle" in message and "refusing to load" in message


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    for label in ("dark", "ramp"):
        (tmp_path / label).mkdir()
        for index in range(3):
            pixels = np.full((8, 8), 1000 * index, dtype=np.uint16) if label == "dark" else None
            if pixels is None:
                pixels = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)  # 0 .. 63000
            Image.fromarray(pixels).save(tmp_path / label / f"{index}.png")
    data = load_dataset(tmp_path)
    images = torch.cat([data.train_images, data.val_images])
    assert images.max() == 245 and images.float().mean() < 100  # 63000 / 65535 * 255; Pillow alone gives 255s
