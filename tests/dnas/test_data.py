"""Data sets by spec: digits (bundled), cifar10 pickles and image folders written here in their real formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from search_client.errors import DataSpecError
from search_client.search.data import global_batches, iterate_batches, load_data


def test_digits_are_resized_to_three_channels_with_a_seeded_split() -> None:
    data = load_data("digits", resolution=32, seed=0)
    images, labels = data.train.tensors
    val_images, _ = data.val.tensors
    assert images.shape[1:] == (3, 32, 32) and val_images.shape[1:] == (3, 32, 32)
    assert len(data.train) + len(data.val) == 1797 and len(data.val) == 359
    assert data.num_classes == 10 and set(labels.tolist()) == set(range(10))
    assert torch.equal(images[:, 0], images[:, 2])
    assert torch.equal(load_data("digits", 32, seed=0).val.tensors[1], data.val.tensors[1])
    assert not torch.equal(load_data("digits", 32, seed=1).val.tensors[1], data.val.tensors[1])


def write_cifar_batch(path: Path, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch = {
        b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        b"labels": rng.integers(0, 10, count).tolist(),
    }
    path.write_bytes(pickle.dumps(batch))


def test_cifar10_reads_the_python_pickle_batches(tmp_path: Path) -> None:
    for index in range(1, 6):
        write_cifar_batch(tmp_path / f"data_batch_{index}", 4, seed=index)
    write_cifar_batch(tmp_path / "test_batch", 6, seed=9)
    data = load_data(f"cifar10:{tmp_path}", resolution=32)
    assert len(data.train) == 20 and len(data.val) == 6 and data.num_classes == 10
    image, label = data.train[0]
    assert image.shape == (3, 32, 32) and 0 <= int(label) < 10
    assert data.val.tensors[0].shape == (6, 3, 32, 32)
    assert load_data(f"cifar10:{tmp_path}", resolution=64).val.tensors[0].shape == (6, 3, 64, 64)


def test_cifar10_names_the_missing_files(tmp_path: Path) -> None:
    write_cifar_batch(tmp_path / "data_batch_1", 4, seed=1)
    with pytest.raises(DataSpecError, match="data_batch_2"):
        load_data(f"cifar10:{tmp_path}", 32)


def test_imagefolder_reads_class_folders_with_train_and_val_transforms(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for index in range(2):
                pixels = rng.integers(0, 256, (40 + 7 * index, 60, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    data = load_data(f"imagefolder:{tmp_path}", resolution=24)
    assert data.num_classes == 2 and len(data.train) == 4 and len(data.val) == 4
    torch.manual_seed(0)
    batches = global_batches(torch.arange(4), 2, seed=0)
    for images, labels in iterate_batches(data.train, batches, workers=0):
        assert images.shape == (2, 3, 24, 24) and labels.dtype == torch.int64
    val_image, val_label = data.val[3]
    assert val_image.shape == (3, 24, 24) and int(val_label) == 1
    assert torch.equal(val_image, data.val[3][0])  # evaluation is deterministic


@pytest.mark.parametrize("spec", ["mnist", "cifar10", "digits:extra", "imagefolder:"])
def test_unknown_or_incomplete_specs_are_refused(spec: str) -> None:
    with pytest.raises(DataSpecError, match="expected digits, fake"):
        load_data(spec, 32)


def test_imagefolder_without_splits_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataSpecError, match="train"):
        load_data(f"imagefolder:{tmp_path}", 32)


def test_global_batches_are_seeded_full_and_disjoint() -> None:
    batches = global_batches(torch.arange(10), 3, seed=4)
    assert [len(b) for b in batches] == [3, 3, 3]
    flat = torch.cat(batches).tolist()
    assert len(set(flat)) == 9
    assert all(
        torch.equal(a, b) for a, b in zip(batches, global_batches(torch.arange(10), 3, seed=4), strict=True)
    )
