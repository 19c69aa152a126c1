"""The fused weighted layer computes exactly the paper's sum over standalone blocks.py candidates (outputs,
gradients of the input, the weights and every parameter, and BatchNorm's running statistics), in float64 so that tight tolerances catch any wrong term rather than float32's reordered
sums."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fbnet_core.blocks import CANDIDATES
from fbnet_core.space import LayerSpec
from search_client.search.supernet_layer import SupernetLayer
from search_client.space.blocks import make_block
from search_client.space.depthwise import DepthwiseConv2d

# Residual layers, stride-2 layers with a projection skip, maps where the 5x5 and 3x3 kernels are cropped
# (to 3x3 on 2x2 maps, to the centre on 1x1, to 5x1 on a 3x1 map) and a map where they are not.
LAYERS = [
    LayerSpec(0, 16, 16, 1, (7, 7)),
    LayerSpec(1, 16, 24, 2, (8, 8)),
    LayerSpec(2, 24, 24, 1, (2, 2)),
    LayerSpec(3, 24, 32, 2, (2, 2)),
    LayerSpec(4, 32, 32, 1, (1, 1)),
    LayerSpec(5, 32, 48, 1, (3, 1)),
]
BATCH = 5


def _randomise_norms(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BatchNorm state, so that evaluation mode is checked on more than the identity."""
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm2d):
            for tensor in (norm.weight, norm.bias, norm.running_mean):
                tensor.data.copy_(torch.randn(tensor.shape, generator=generator))
            norm.running_var.copy_(torch.rand(norm.running_var.shape, generator=generator) + 0.5)


def _plain_copies(layer: SupernetLayer, spec: LayerSpec) -> nn.ModuleList:
    plain = nn.ModuleList(
        make_block(name, spec.in_channels, spec.out_channels, spec.stride) for name in CANDIDATES
    )
    plain.load_state_dict(layer.state_dict())  # the layer's state is the candidates': a plain block's keys
    return plain.train(layer.training)


@pytest.mark.parametrize(
    "spec", LAYERS, ids=lambda spec: f"{spec.in_channels}-{spec.out_channels}-{spec.input_hw}"
)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_weighted_sum_equals_the_plain_candidates(spec: LayerSpec, training: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    layer = SupernetLayer(spec).train(training).double()
    _randomise_norms(layer, generator)
    plain = _plain_copies(layer, spec).double()
    x = torch.randn(BATCH, spec.in_channels, *spec.input_hw, generator=generator, dtype=torch.float64)
    x.requires_grad_()
    weights = torch.randn(BATCH, len(CANDIDATES), generator=generator, dtype=torch.float64).softmax(1)
    weights.requires_grad_()
    fused = layer.weighted(x, weights)
    reference = sum(weights[:, index].view(-1, 1, 1, 1) * block(x) for index, block in enumerate(plain))
    assert isinstance(reference, torch.Tensor)
    torch.testing.assert_close(fused, reference, rtol=1e-10, atol=1e-10)
    upstream = torch.randn(fused.shape, generator=generator, dtype=torch.float64)
    fused_grads = torch.autograd.grad(fused, [x, weights, *layer.parameters()], upstream)
    plain_grads = torch.autograd.grad(reference, [x, weights, *plain.parameters()], upstream)
    for fused_grad, plain_grad in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(fused_grad, plain_grad, rtol=1e-10, atol=1e-10)
    for (name, fused_buffer), plain_buffer in zip(
        layer.state_dict().items(), plain.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(fused_buffer, plain_buffer, rtol=1e-10, atol=1e-10, msg=name)


def test_the_layer_state_is_the_plain_candidates_and_exports_as_blocks() -> None:
    layer = SupernetLayer(LAYERS[2])
    block = make_block("k5_e6", 24, 24, 1)
    block.load_state_dict(layer[CANDIDATES.index("k5_e6")].state_dict())
    assert not any(isinstance(m, DepthwiseConv2d) and m.crop_to_map for m in block.modules())
    assert all(m.crop_to_map for m in layer.modules() if isinstance(m, DepthwiseConv2d))
    assert "7.dw.0.weight" in layer.state_dict()
    # The g2 candidates' shuffle orders are derived buffers, not state a checkpoint or a plain block would carry.
    assert isinstance(getattr(layer, f"shuffle_order_{CANDIDATES.index('k3_e1_g2')}"), torch.Tensor)
    assert not any(key.startswith("shuffle_order") for key in layer.state_dict())


@pytest.mark.parametrize("map_hw", [(1, 1), (2, 2), (3, 5), (6, 6)])
@pytest.mark.parametrize("stride", [1, 2])
def test_cropped_depthwise_conv_is_the_full_one(map_hw: tuple[int, int], stride: int) -> None:
    torch.manual_seed(0)
    block = make_block("k5_e3", 8, 8 if stride == 1 else 16, stride)
    conv = block.dw[0]
    x = torch.randn(3, conv.in_channels, *map_hw, requires_grad=True)
    full = conv(x)
    full_grads = torch.autograd.grad(full.square().sum(), [x, conv.weight])
    conv.crop_to_map = True
    cropped = conv(x)
    cropped_grads = torch.autograd.grad(cropped.square().sum(), [x, conv.weight])
    torch.testing.assert_close(cropped, full)
    for cropped_grad, full_grad in zip(cropped_grads, full_grads, strict=True):
        torch.testing.assert_close(cropped_grad, full_grad)
