"""Building FBNet networks: an architecture (22 block names) on a search space -> `nn.Module`.

Module names are stable (`stem`, `layers.0` .. `layers.21`, `head`, `classifier`) so that per-layer counts,
checkpoints and the supernet line up with the space's layer indices.
"""

from __future__ import annotations

import torch
from torch import nn

from fbnet_core.arch import Architecture
from fbnet_core.space import ClassifierSpec, HeadSpec, SearchSpace, StemSpec
from search_client.space.blocks import ConvBNAct, PoolClassifier, make_block


def make_stem(stem: StemSpec) -> nn.Module:
    return ConvBNAct(stem.in_channels, stem.out_channels, stem.kernel_size, stride=stem.stride)


def make_head(head: HeadSpec) -> nn.Module:
    return ConvBNAct(head.in_channels, head.out_channels, 1)


def make_classifier(classifier: ClassifierSpec) -> nn.Module:
    return PoolClassifier(classifier.in_channels, classifier.num_classes)


class FBNet(nn.Module):
    def __init__(self, arch: Architecture, space: SearchSpace) -> None:
        super().__init__()
        self.stem = make_stem(space.stem)
        self.layers = nn.Sequential(
            *(
                make_block(name, layer.in_channels, layer.out_channels, layer.stride)
                for name, layer in zip(arch.blocks, space.layers, strict=True)
            )
        )
        self.head = make_head(space.head)
        self.classifier = make_classifier(space.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.layers(self.stem(x))))


def build_model(arch: Architecture, space: SearchSpace) -> FBNet:
    """The network `arch` describes on `space`, freshly initialised, in training mode."""
    return FBNet(arch, space)
