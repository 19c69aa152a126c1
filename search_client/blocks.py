"""The block registry: the 9 FBNet candidate blocks, plus the fixed conv/classifier layers they share.

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

from dataclasses import dataclass

import torch
from torch import nn

from search_client.depthwise import DepthwiseConv2d
from search_client.errors import InvalidOpSpecError, UnknownBlockError


@dataclass(frozen=True)
class BlockSpec:
    """What a candidate block is made of; `kernel_size` and `expansion` are None for `skip`."""

    name: str
    kernel_size: int | None
    expansion: int | None
    groups: int = 1

    @property
    def is_skip(self) -> bool:
        return self.kernel_size is None


def _candidate(kernel_size: int, expansion: int, groups: int = 1) -> BlockSpec:
    suffix = f"_g{groups}" if groups > 1 else ""
    return BlockSpec(f"k{kernel_size}_e{expansion}{suffix}", kernel_size, expansion, groups)


# The paper's order; the supernet's per-layer candidate index is the position in this tuple, so never reorder.
BLOCKS: dict[str, BlockSpec] = {
    spec.name: spec
    for spec in (
        _candidate(3, 1),
        _candidate(3, 1, groups=2),
        _candidate(3, 3),
        _candidate(3, 6),
        _candidate(5, 1),
        _candidate(5, 1, groups=2),
        _candidate(5, 3),
        _candidate(5, 6),
        BlockSpec("skip", None, None),
    )
}
CANDIDATES: tuple[str, ...] = tuple(BLOCKS)
VALID_STRIDES = (1, 2)


def get_block_spec(name: str) -> BlockSpec:
    try:
        return BLOCKS[name]
    except KeyError as exc:
        raise UnknownBlockError(name, CANDIDATES) from exc


def is_identity(name: str, in_channels: int, out_channels: int, stride: int) -> bool:
    """True when the block is a parameter-free identity: nothing to run, nothing to measure."""
    return get_block_spec(name).is_skip and stride == 1 and in_channels == out_channels


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


def check_block_geometry(name: str, in_channels: int, out_channels: int, stride: int) -> BlockSpec:
    """Validate a block's arguments once, so a bad op spec fails with a message instead of inside torch."""
    spec = get_block_spec(name)
    if in_channels < 1 or out_channels < 1:
        raise InvalidOpSpecError(
            f"block {name}: channels must be positive, got {in_channels} -> {out_channels}"
        )
    if stride not in VALID_STRIDES:
        raise InvalidOpSpecError(f"block {name}: stride must be one of {VALID_STRIDES}, got {stride}")
    if in_channels % spec.groups or out_channels % spec.groups:
        raise InvalidOpSpecError(
            f"block {name}: channels {in_channels} -> {out_channels} must be divisible by groups={spec.groups}"
        )
    return spec


def make_block(name: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Build candidate `name` for one layer shape; the single constructor every caller uses."""
    spec = check_block_geometry(name, in_channels, out_channels, stride)
    if spec.kernel_size is None or spec.expansion is None:
        if is_identity(name, in_channels, out_channels, stride):
            return nn.Identity()
        return ConvBNAct(in_channels, out_channels, 1, stride=stride)
    return InvertedResidual(in_channels, out_channels, stride, spec.kernel_size, spec.expansion, spec.groups)
