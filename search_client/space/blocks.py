"""The candidate blocks as torch modules (their data is `fbnet_core.blocks`), plus the fixed conv/classifier layers.

Every candidate is built by one constructor, `make_block(name, in_channels, out_channels, stride)`, so the
supernet, the model builder and the list of ops to profile treat candidates as interchangeable.

A candidate `k{K}_e{E}[_g{G}]` is the paper's inverted residual block:
    1x1 conv Cin -> E*Cin (groups G) + BN + ReLU
    channel shuffle (only when G > 1)
    KxK depthwise conv carrying the stride (padding K//2) + BN + ReLU
    1x1 conv E*Cin -> Cout (groups G) + BN, no ReLU (linear bottleneck)
    + the input, only when stride == 1 and Cin == Cout.
The e1 blocks keep their first 1x1 conv (as in the FBNet authors' code). `skip` is the identity where shapes
match and a 1x1 conv (stride s) + BN + ReLU projection where they do not: there it costs time and is measured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fbnet_core.blocks import check_block_geometry, is_identity
from search_client.space.depthwise import DepthwiseConv2d


class StridedPointwiseConv2d(nn.Conv2d):
    """The skip projection's 1x1 convolution with a stride: while training on the CPU it reads every stride-th
    pixel and convolves those with stride 1 - the same output and gradients. torch's CPU backward of a strided
    1x1 convolution on channels-last data with 4 - 12 channels crashes the process (segmentation fault; torch
    2.13, e.g. 8 channels at 112x112 or 56x56, the 224 px space at width 0.25). In eval mode, and so in every
    exported or compiled op and network, it is the plain strided convolution the LUT measures."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride_h, stride_w = self.stride
        if not self.training or x.device.type != "cpu" or (stride_h, stride_w) == (1, 1):
            return super().forward(x)
        return F.conv2d(x[:, :, ::stride_h, ::stride_w], self.weight, self.bias, 1, 0, 1, self.groups)


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional activation; the unit every block and fixed layer is made of."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        activation: type[nn.Module] | None = nn.ReLU,
        conv: type[nn.Conv2d] = nn.Conv2d,
    ) -> None:
        super().__init__(
            conv(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            activation(inplace=True) if activation is not None else nn.Identity(),
        )


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle, so that the next grouped conv sees channels from every group."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        x = x.reshape(batch, self.groups, channels // self.groups, height, width)
        return x.transpose(1, 2).reshape(batch, channels, height, width)


class InvertedResidual(nn.Module):
    """The FBNet candidate block (see the module docstring).

    `activation` and `expand_e1=False` (no first 1x1 conv when the expansion is 1) exist for MobileNetV2,
    which differs from FBNet's blocks only there.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        kernel_size: int,
        expansion: int,
        groups: int = 1,
        activation: type[nn.Module] = nn.ReLU,
        expand_e1: bool = True,
    ) -> None:
        super().__init__()
        mid_channels = in_channels * expansion
        if expansion == 1 and not expand_e1:
            self.pw: nn.Module = nn.Identity()
        else:
            self.pw = ConvBNAct(in_channels, mid_channels, 1, groups=groups, activation=activation)
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.dw = ConvBNAct(
            mid_channels,
            mid_channels,
            kernel_size,
            stride=stride,
            groups=mid_channels,
            activation=activation,
            conv=DepthwiseConv2d,
        )
        self.pwl = ConvBNAct(mid_channels, out_channels, 1, groups=groups, activation=None)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.pwl(self.dw(self.shuffle(self.pw(x))))
        return x + shortcut if self.use_residual else x


class PoolClassifier(nn.Module):
    """Global average pool + fully connected layer: the network's last op."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))


def make_block(name: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Build candidate `name` for one layer shape; the single constructor every caller uses."""
    spec = check_block_geometry(name, in_channels, out_channels, stride)
    if spec.kernel_size is None or spec.expansion is None:
        if is_identity(name, in_channels, out_channels, stride):
            return nn.Identity()
        return ConvBNAct(in_channels, out_channels, 1, stride=stride, conv=StridedPointwiseConv2d)
    return InvertedResidual(in_channels, out_channels, stride, spec.kernel_size, spec.expansion, spec.groups)
