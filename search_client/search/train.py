"""Training a searched architecture from scratch (the paper's final step), reporting top-1 on the validation split.

SGD with momentum and a cosine schedule, the same recipe as the search's weight phase, on the whole train split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from fbnet_core.arch import Architecture
from fbnet_core.space import SpaceParams, build_space
from search_client.errors import InvalidSearchConfigError
from search_client.search.data import global_batches, iterate_batches, load_data
from search_client.search.torch_device import activation_layout
from search_client.space.model import build_model


@dataclass(frozen=True)
class TrainConfig:
    data: str = "digits"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 0
    workers: int = 0


@dataclass(frozen=True)
class TrainEpoch:
    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    val_accuracy: float


@dataclass
class TrainResult:
    arch: Architecture
    params: SpaceParams
    model: nn.Module
    history: list[TrainEpoch] = field(default_factory=list)

    @property
    def top1(self) -> float:
        """Top-1 accuracy on the validation split after the last epoch, as a fraction."""
        return self.history[-1].val_accuracy

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch.to_dict(self.params),
            "top1": self.top1,
            "epochs": [dataclasses.asdict(record) for record in self.history],
        }


@torch.no_grad()
def evaluate(
    model: nn.Module, dataset: Dataset, batch_size: int, workers: int, device: torch.device
) -> float:
    model.eval()
    correct = total = 0
    batches = list(torch.arange(len(dataset)).split(batch_size))
    for images, labels in iterate_batches(dataset, batches, workers):
        logits = model(images.to(device, memory_format=activation_layout(device)))
        correct += int((logits.argmax(1).cpu() == labels).sum())
        total += labels.shape[0]
    return correct / max(1, total)


def train_architecture(
    arch: Architecture,
    params: SpaceParams,
    config: TrainConfig,
    device: torch.device | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch_end: Callable[[TrainEpoch], None] | None = None,
) -> TrainResult:
    """Train `arch` on `config.data`; the classifier follows the data set's class count."""
    device = device or torch.device("cpu")
    data = load_data(config.data, params.resolution, config.seed)
    params = dataclasses.replace(params, num_classes=data.num_classes)
    if len(data.train) < config.batch_size:
        raise InvalidSearchConfigError(
            f"{len(data.train)} training samples are fewer than one batch of {config.batch_size}"
        )
    torch.manual_seed(config.seed)
    layout = activation_layout(device)
    model = build_model(arch, build_space(params)).to(device, memory_format=layout)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    result = TrainResult(arch, params, model)
    all_indices = torch.arange(len(data.train))
    for epoch in range(config.epochs):
        model.train()
        batches = global_batches(all_indices, config.batch_size, config.seed * 10_007 + epoch)
        loss_sum = correct = seen = 0.0
        for step, (images, labels) in enumerate(iterate_batches(data.train, batches, config.workers)):
            images, labels = images.to(device, memory_format=layout), labels.to(device)
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * labels.shape[0]
            correct += int((logits.argmax(1) == labels).sum())
            seen += labels.shape[0]
            if on_step is not None:
                on_step(step + 1, len(batches), loss_sum / seen)
        record = TrainEpoch(
            epoch=epoch,
            lr=scheduler.get_last_lr()[0],
            train_loss=loss_sum / seen,
            train_accuracy=correct / seen,
            val_accuracy=evaluate(model, data.val, config.batch_size, config.workers, device),
        )
        scheduler.step()
        result.history.append(record)
        if on_epoch_end is not None:
            on_epoch_end(record)
    return result
