"""MobileNetV2 (Sandler et al., 2018), the paper's baseline, written with this package's blocks.

Same vocabulary as FBNet: `stem`, `layers`, `head`, `classifier`. It differs from an FBNet network in its
ReLU6, its 32-channel stem, its t=1 first block without the expansion conv, and its 1280-wide head (scaled up,
never down, with the width multiplier). Dropout before the classifier is left out: it changes neither the
counts nor inference.
"""

from __future__ import annotations

import torch
from torch import nn

from fbnet_core.space import make_divisible
from search_client.space.blocks import ConvBNAct, InvertedResidual, PoolClassifier

# (expansion t, output channels c, repeats n, first stride s), from the MobileNetV2 paper's Table 2.
MOBILENETV2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
MOBILENETV2_STEM_CHANNELS = 32
MOBILENETV2_HEAD_CHANNELS = 1280
MOBILENETV2_KERNEL_SIZE = 3


class MobileNetV2(nn.Module):
    def __init__(self, width: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        channels = make_divisible(MOBILENETV2_STEM_CHANNELS * width)
        self.stem = ConvBNAct(3, channels, 3, stride=2, activation=nn.ReLU6)
        blocks: list[nn.Module] = []
        for expansion, stage_channels, repeats, first_stride in MOBILENETV2_SETTINGS:
            out_channels = make_divisible(stage_channels * width)
            for position in range(repeats):
                stride = first_stride if position == 0 else 1
                blocks.append(
                    InvertedResidual(
                        channels,
                        out_channels,
                        stride,
                        MOBILENETV2_KERNEL_SIZE,
                        expansion,
                        activation=nn.ReLU6,
                        expand_e1=False,
                    )
                )
                channels = out_channels
        self.layers = nn.Sequential(*blocks)
        head_channels = make_divisible(MOBILENETV2_HEAD_CHANNELS * max(1.0, width))
        self.head = ConvBNAct(channels, head_channels, 1, activation=nn.ReLU6)
        self.classifier = PoolClassifier(head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.layers(self.stem(x))))
