"""Data sets for search and training, named by a spec string; nothing here downloads.

- `digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images), resized, grey repeated to 3 channels;
- `cifar10:PATH`: the standard python-pickle batches (`data_batch_1..5`, `test_batch`) under PATH;
- `imagefolder:PATH`: `PATH/train/<class>/*` and `PATH/val/<class>/*` images, read with Pillow, with the usual
  random-resized-crop + flip for training and resize + centre crop for validation;
- `fake`: seeded random tensors, for tests.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from search_client.errors import DataSpecError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
FAKE_TRAIN_SAMPLES = 128
FAKE_VAL_SAMPLES = 32
FAKE_CLASSES = 10
DIGITS_VAL_FRACTION = 0.2


@dataclass(frozen=True)
class DataSplits:
    train: Dataset
    val: Dataset
    num_classes: int
    name: str


def load_data(spec: str, resolution: int, seed: int = 0) -> DataSplits:
    """Parse `digits | fake | cifar10:PATH | imagefolder:PATH` and load it at `resolution` x `resolution`."""
    kind, _, path = spec.partition(":")
    if kind == "digits" and not path:
        return _digits(resolution, seed)
    if kind == "fake" and not path:
        return _fake(resolution, seed)
    if kind == "cifar10" and path:
        return _cifar10(Path(path), resolution)
    if kind == "imagefolder" and path:
        return _imagefolder(Path(path), resolution)
    raise DataSpecError(f"--data {spec!r}: expected digits, fake, cifar10:PATH or imagefolder:PATH")


def _normalise(images: torch.Tensor) -> torch.Tensor:
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    std = images.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (images - mean) / std


def _resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)


def _digits(resolution: int, seed: int) -> DataSplits:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = _normalise(_resize(images, resolution)).repeat(1, 3, 1, 1).contiguous()
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    num_val = int(round(DIGITS_VAL_FRACTION * len(labels)))
    val_idx, train_idx = order[:num_val], order[num_val:]
    return DataSplits(
        train=TensorDataset(images[train_idx], labels[train_idx]),
        val=TensorDataset(images[val_idx], labels[val_idx]),
        num_classes=10,
        name="digits",
    )


def _fake(resolution: int, seed: int) -> DataSplits:
    generator = torch.Generator().manual_seed(seed)
    total = FAKE_TRAIN_SAMPLES + FAKE_VAL_SAMPLES
    images = torch.randn(total, 3, resolution, resolution, generator=generator)
    labels = torch.randint(0, FAKE_CLASSES, (total,), generator=generator)
    return DataSplits(
        train=TensorDataset(images[:FAKE_TRAIN_SAMPLES], labels[:FAKE_TRAIN_SAMPLES]),
        val=TensorDataset(images[FAKE_TRAIN_SAMPLES:], labels[FAKE_TRAIN_SAMPLES:]),
        num_classes=FAKE_CLASSES,
        name="fake",
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise DataSpecError(f"cifar10: cannot read {path}: {exc}") from exc
    return np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[b"labels"], dtype=np.int64)


class AugmentedTensors(Dataset):
    """In-memory images with CIFAR's standard augmentation: 4-pixel padded random crop and horizontal flip."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, padding: int) -> None:
        self.images, self.labels, self.padding = images, labels, padding

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        size = image.shape[-1]
        padded = F.pad(image, [self.padding] * 4)
        top, left = torch.randint(0, 2 * self.padding + 1, (2,)).tolist()
        image = padded[:, top : top + size, left : left + size]
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image, self.labels[index]


def _cifar10(root: Path, resolution: int) -> DataSplits:
    train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
    test_file = root / "test_batch"
    missing = [str(p) for p in [*train_files, test_file] if not p.is_file()]
    if missing:
        raise DataSpecError(f"cifar10:{root}: missing {', '.join(missing)} (the python-pickle batches)")
    parts = [_read_cifar_batch(p) for p in train_files]
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)

    def to_tensor(raw: np.ndarray) -> torch.Tensor:
        images = torch.from_numpy(raw.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
        return _resize((images - mean) / std, resolution)

    train_x = to_tensor(np.concatenate([p[0] for p in parts]))
    train_y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    test_raw, test_labels = _read_cifar_batch(test_file)
    padding = max(1, resolution // 8)
    return DataSplits(
        train=AugmentedTensors(train_x, train_y, padding),
        val=TensorDataset(to_tensor(test_raw), torch.from_numpy(test_labels)),
        num_classes=10,
        name="cifar10",
    )


class ImageFolder(Dataset):
    """`root/<class>/<image>` files; classes sorted by name. Pillow decodes; the transform is train or eval."""

    def __init__(self, root: Path, classes: list[str], resolution: int, train: bool) -> None:
        self.samples = [
            (path, label)
            for label, name in enumerate(classes)
            if (root / name).is_dir()
            for path in sorted((root / name).iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not self.samples:
            raise DataSpecError(f"imagefolder: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
        self.resolution, self.train = resolution, train
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        path, label = self.samples[index]
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        image = self._random_resized_crop(image) if self.train else self._resize_centre_crop(image)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        if self.train and torch.rand(()) < 0.5:
            pixels = pixels.flip(-1)
        return (pixels - self.mean) / self.std, torch.tensor(label)

    def _random_resized_crop(self, image: PILImage) -> PILImage:
        """Inception-style crop: 8%-100% of the area, aspect ratio 3/4..4/3, ten tries then the centre."""
        width, height = image.size
        area = width * height
        for _ in range(10):
            target_area = area * float(torch.empty(()).uniform_(0.08, 1.0))
            log_ratio = float(torch.empty(()).uniform_(math.log(3 / 4), math.log(4 / 3)))
            crop_w = int(round(math.sqrt(target_area * math.exp(log_ratio))))
            crop_h = int(round(math.sqrt(target_area / math.exp(log_ratio))))
            if 0 < crop_w <= width and 0 < crop_h <= height:
                left = int(torch.randint(0, width - crop_w + 1, ()))
                top = int(torch.randint(0, height - crop_h + 1, ()))
                box = (left, top, left + crop_w, top + crop_h)
                return image.resize((self.resolution, self.resolution), box=box)
        return self._resize_centre_crop(image)

    def _resize_centre_crop(self, image: PILImage) -> PILImage:
        """Resize the short side to resolution / 0.875, then crop the centre square (the ImageNet convention)."""
        width, height = image.size
        short = int(round(self.resolution / 0.875))
        scale = short / min(width, height)
        image = image.resize((max(short, round(width * scale)), max(short, round(height * scale))))
        left = (image.size[0] - self.resolution) // 2
        top = (image.size[1] - self.resolution) // 2
        return image.crop((left, top, left + self.resolution, top + self.resolution))


def _imagefolder(root: Path, resolution: int) -> DataSplits:
    try:
        import PIL  # noqa: F401
    except ImportError as exc:
        raise DataSpecError("imagefolder: reading images needs Pillow (pip install pillow)") from exc
    train_root, val_root = root / "train", root / "val"
    if not train_root.is_dir() or not val_root.is_dir():
        raise DataSpecError(
            f"imagefolder:{root}: expected {train_root} and {val_root} with one folder per class"
        )
    classes = sorted(p.name for p in train_root.iterdir() if p.is_dir())
    if not classes:
        raise DataSpecError(f"imagefolder:{root}: {train_root} has no class folders")
    return DataSplits(
        train=ImageFolder(train_root, classes, resolution, train=True),
        val=ImageFolder(val_root, classes, resolution, train=False),
        num_classes=len(classes),
        name=f"imagefolder:{root.name}",
    )


def global_batches(indices: torch.Tensor, batch_size: int, seed: int) -> list[torch.Tensor]:
    """Shuffle with a seeded generator (identical on every rank) and cut into global batches; a partial last
    batch is dropped so that BatchNorm never sees a single sample and every rank gets equal shares."""
    order = indices[torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))]
    return [order[start : start + batch_size] for start in range(0, len(order) - batch_size + 1, batch_size)]


def iterate_batches(
    dataset: Dataset, batches: list[torch.Tensor], workers: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """In-memory data sets are sliced directly (fast on CPU); file-backed ones go through a DataLoader."""
    if isinstance(dataset, TensorDataset):
        images, labels = dataset.tensors
        for batch in batches:
            yield images[batch], labels[batch]
        return
    loader = DataLoader(dataset, batch_sampler=[batch.tolist() for batch in batches], num_workers=workers)
    yield from loader
