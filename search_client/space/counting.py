"""Parameters and multiply-adds of a model at its input resolution, per layer and in total.

What is counted (the paper's convention, where "FLOPs" means multiply-adds):
- multiply-adds of every Conv2d (output elements x input channels per group x kernel area) and every Linear
  (input features x output features); BatchNorm, ReLU, residual adds and pooling are not counted;
- parameters: every trainable parameter, BatchNorm's scale and shift included (running statistics are buffers,
  not parameters).
A "layer" is a direct child of the model, and each element of a direct child that is a plain `nn.Sequential`
(`layers.0` .. `layers.21`), so the rows line up with the search space's layer indices.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerCount:
    name: str
    params: int
    madds: int


@dataclass(frozen=True)
class ModelCount:
    layers: tuple[LayerCount, ...]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def madds(self) -> int:
        return sum(layer.madds for layer in self.layers)


def _units(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, child in model.named_children():
        if type(child) is nn.Sequential:
            yield from ((f"{name}.{index}", grandchild) for index, grandchild in child.named_children())
        else:
            yield name, child


def _madds(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kernel_area = module.kernel_size[0] * module.kernel_size[1]
        return output.numel() * (module.in_channels // module.groups) * kernel_area
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def count_model(model: nn.Module, input_shape: tuple[int, int, int, int]) -> ModelCount:
    """Count `model` on one input of `input_shape` (batch must be 1: counts are per image)."""
    if input_shape[0] != 1:
        raise ValueError(f"count_model counts one image: batch must be 1, got input_shape {input_shape}")
    madds: dict[str, int] = defaultdict(int)
    handles = []
    units = list(_units(model))
    for unit_name, unit in units:
        for module in unit.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):

                def hook(
                    module: nn.Module, _inputs: object, output: torch.Tensor, name: str = unit_name
                ) -> None:
                    madds[name] += _madds(module, output)

                handles.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return ModelCount(
        tuple(
            LayerCount(name, sum(p.numel() for p in unit.parameters() if p.requires_grad), madds[name])
            for name, unit in units
        )
    )
