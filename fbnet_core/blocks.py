"""The 9 FBNet candidate blocks as data: what each is made of, and the geometry rules every layer obeys.

A candidate `k{K}_e{E}[_g{G}]` is the paper's inverted residual block (1x1 conv to E*Cin with G groups, channel
shuffle when G > 1, KxK depthwise conv carrying the stride, 1x1 linear conv to Cout, residual when the shapes
match); `skip` is the identity where shapes match and a 1x1 projection where they do not. Building the torch
modules is the search client's (`search_client/space/blocks.py`); this module needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from fbnet_core.errors import InvalidOpSpecError, UnknownBlockError


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
