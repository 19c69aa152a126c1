from __future__ import annotations

import pytest
import torch
from torch import nn

from fbnet_core.blocks import BLOCKS, CANDIDATES, get_block_spec
from fbnet_core.errors import InvalidOpSpecError, UnknownBlockError
from search_client.space.blocks import InvertedResidual, make_block

# (in_channels, out_channels, stride): same shape, stride 2, channel change at stride 1.
GEOMETRIES = [(16, 16, 1), (16, 24, 2), (64, 112, 1)]


def test_candidates_are_the_papers_nine_in_order() -> None:
    assert CANDIDATES == (
        "k3_e1",
        "k3_e1_g2",
        "k3_e3",
        "k3_e6",
        "k5_e1",
        "k5_e1_g2",
        "k5_e3",
        "k5_e6",
        "skip",
    )
    assert tuple(BLOCKS) == CANDIDATES


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"c{g[0]}o{g[1]}s{g[2]}")
@pytest.mark.parametrize("name", CANDIDATES)
def test_block_forward_backward_shapes(name: str, geometry: tuple[int, int, int]) -> None:
    in_channels, out_channels, stride = geometry
    block = make_block(name, in_channels, out_channels, stride)
    x = torch.randn(2, in_channels, 8, 8, requires_grad=True)
    y = block(x)
    assert y.shape == (2, out_channels, 8 // stride, 8 // stride)
    y.square().mean().backward()
    assert torch.isfinite(y).all()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", [n for n in CANDIDATES if n != "skip"])
def test_inverted_residual_structure(name: str) -> None:
    spec = get_block_spec(name)
    block = make_block(name, 32, 32, 1)
    assert isinstance(block, InvertedResidual)
    pw, dw, pwl = block.pw[0], block.dw[0], block.pwl[0]
    assert (pw.in_channels, pw.out_channels, pw.groups) == (32, 32 * spec.expansion, spec.groups)
    assert dw.kernel_size == (spec.kernel_size, spec.kernel_size)
    assert dw.groups == dw.in_channels == 32 * spec.expansion
    assert pwl.groups == spec.groups
    assert isinstance(block.pwl[2], nn.Identity), "linear bottleneck: no ReLU after the last 1x1 conv"
    assert block.use_residual
    assert not make_block(name, 32, 32, 2).use_residual
    assert not make_block(name, 32, 64, 1).use_residual


def test_residual_adds_the_input() -> None:
    block = make_block("k3_e1", 8, 8, 1).eval()
    # Zeroing the last BN's scale and shift leaves only the shortcut.
    nn.init.zeros_(block.pwl[1].weight)
    nn.init.zeros_(block.pwl[1].bias)
    x = torch.randn(1, 8, 4, 4)
    assert torch.equal(block(x), x)


def test_grouped_blocks_shuffle_channels() -> None:
    block = make_block("k3_e1_g2", 4, 4, 1)
    x = torch.arange(4.0).reshape(1, 4, 1, 1)
    assert block.shuffle(x).flatten().tolist() == [0.0, 2.0, 1.0, 3.0]
    assert isinstance(make_block("k3_e1", 4, 4, 1).shuffle, nn.Identity)


def test_skip_is_identity_only_where_shapes_match() -> None:
    assert isinstance(make_block("skip", 16, 16, 1), nn.Identity)
    projection = make_block("skip", 16, 24, 2)
    conv = projection[0]
    assert (conv.kernel_size, conv.stride, conv.out_channels) == ((1, 1), (2, 2), 24)
    assert isinstance(projection[2], nn.ReLU)
    assert not isinstance(make_block("skip", 16, 16, 2), nn.Identity)


def test_unknown_block_lists_valid_names() -> None:
    with pytest.raises(UnknownBlockError, match="valid blocks: k3_e1, k3_e1_g2"):
        make_block("k7_e6", 16, 16, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("k3_e1", 16, 16, 3), "stride must be one of"),
        (("k3_e1", 0, 16, 1), "channels must be positive"),
        (("k3_e1_g2", 15, 16, 1), "divisible by groups=2"),
    ],
)
def test_bad_block_geometry_is_a_typed_error(args: tuple[str, int, int, int], message: str) -> None:
    with pytest.raises(InvalidOpSpecError, match=message):
        make_block(*args)
