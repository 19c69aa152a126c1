"""One searchable layer of the supernet: its candidate blocks and the two ways the search runs them.

The candidates are the plain `blocks.py` modules and own every parameter and statistic, so the layer's state
is theirs (`layers.<l>.<k>.*`) and any candidate exports as a standalone block. Only the computation differs:

`weighted` is the paper's sum_k m_k * block_k(x) with per-sample weights m, computed with the candidates fused
where they share an input: one 1x1 expansion convolution producing every candidate's expansion channels
(grouped weights as block-diagonal dense ones), one BatchNorm over all of them, one depthwise convolution per
kernel extent, each candidate's own projection, one BatchNorm over the projections and one weighted sum.
Exactly the same function as running the candidates one by one (tests/dnas/test_supernet_layer.py).

`single_path` runs one candidate per sample group: the candidate drawn for the group, on the group's samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fbnet_core.blocks import CANDIDATES
from fbnet_core.space import LayerSpec
from search_client.search.concat_norm import concat_batch_norm
from search_client.space.blocks import ChannelShuffle, InvertedResidual, make_block
from search_client.space.depthwise import DepthwiseConv2d, depthwise_conv, receptive_kernel


def dense_pointwise_weight(conv: nn.Conv2d) -> torch.Tensor:
    """A grouped 1x1 convolution's weight as the equivalent dense (out, in, 1, 1) one (zeros across groups)."""
    if conv.groups == 1:
        return conv.weight
    blocks = conv.weight.flatten(1).chunk(conv.groups)
    return torch.block_diag(*blocks)[:, :, None, None]


def shuffle_index(groups: int, channels: int) -> torch.Tensor:
    """The channel order ChannelShuffle(groups) produces, as indices into its input's channels."""
    return ChannelShuffle(groups)(torch.arange(channels).view(1, channels, 1, 1)).flatten()


class SupernetLayer(nn.ModuleList):
    def __init__(self, layer: LayerSpec) -> None:
        super().__init__(
            make_block(name, layer.in_channels, layer.out_channels, layer.stride) for name in CANDIDATES
        )
        self.stride = layer.stride
        self.use_residual = layer.stride == 1 and layer.in_channels == layer.out_channels
        self.skip_index = CANDIDATES.index("skip")
        self.block_indices = [
            index for index, block in enumerate(self) if isinstance(block, InvertedResidual)
        ]
        for module in self.modules():
            if isinstance(module, DepthwiseConv2d):
                module.crop_to_map = True
        # After the expansion, each grouped candidate's channels are shuffled before its depthwise conv.
        order, start = [], 0
        for block in self._blocks():
            channels = block.dw[0].in_channels
            groups = block.shuffle.groups if isinstance(block.shuffle, ChannelShuffle) else 1
            order.append(start + shuffle_index(groups, channels))
            start += channels
        self.register_buffer("expanded_order", torch.cat(order), persistent=False)

    def _blocks(self) -> list[InvertedResidual]:
        return [self[index] for index in self.block_indices]

    def weighted(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_k weights[:, k] * candidate_k(x), weights (batch, candidates)."""
        blocks = self._blocks()
        hidden = F.conv2d(x, torch.cat([dense_pointwise_weight(block.pw[0]) for block in blocks]))
        hidden = F.relu_(concat_batch_norm(hidden, [block.pw[1] for block in blocks]))
        hidden = hidden.index_select(1, self.expanded_order)
        hidden = self._depthwise(hidden, blocks)
        hidden = F.relu_(concat_batch_norm(hidden, [block.dw[1] for block in blocks]))
        mid_sizes = [block.dw[0].out_channels for block in blocks]
        projected = torch.cat(
            [block.pwl[0](part) for block, part in zip(blocks, hidden.split(mid_sizes, 1), strict=True)], 1
        )
        projected = concat_batch_norm(projected, [block.pwl[1] for block in blocks])
        batch, _, height, width = projected.shape
        block_weights = weights[:, self.block_indices]
        output = torch.einsum(
            "bk,bkchw->bchw", block_weights, projected.view(batch, len(blocks), -1, height, width)
        )
        output = output + _per_sample(weights[:, self.skip_index]) * self[self.skip_index](x)
        if self.use_residual:
            output = output + _per_sample(block_weights.sum(1)) * x
        return output

    def _depthwise(self, hidden: torch.Tensor, blocks: list[InvertedResidual]) -> torch.Tensor:
        """Each block's depthwise conv on its channels: one conv per run of blocks whose receptive kernels match."""
        map_hw = (hidden.shape[-2], hidden.shape[-1])
        kernels = [receptive_kernel(block.dw[0].weight, map_hw) for block in blocks]
        runs, first = [], 0
        for end in range(1, len(blocks) + 1):
            if end == len(blocks) or kernels[end].shape != kernels[first].shape:
                runs.append(torch.cat(kernels[first:end]))
                first = end
        # split, not slicing: its backward concatenates the gradients instead of zero-filling one per slice.
        parts = hidden.split([run.shape[0] for run in runs], 1)
        outputs = [depthwise_conv(part, run, self.stride) for part, run in zip(parts, runs, strict=True)]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, 1)

    def single_path(self, x: torch.Tensor, weights: torch.Tensor, group_count: int) -> torch.Tensor:
        """Each sample group (sample i in group i mod `group_count`) through the candidate its shared one-hot,
        straight-through weights select, scaled by that weight so that theta receives the gradient."""
        if group_count == 1:
            return self._run_drawn(x, weights)
        members = [
            torch.arange(group, x.shape[0], group_count, device=x.device) for group in range(group_count)
        ]
        outputs = [
            self._run_drawn(x.index_select(0, rows), weights.index_select(0, rows)) for rows in members
        ]
        return torch.cat(outputs).index_select(0, torch.cat(members).argsort())

    def _run_drawn(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        index = int(weights[0].argmax())
        return self[index](x) * _per_sample(weights[:, index])


def _per_sample(weights: torch.Tensor) -> torch.Tensor:
    return weights.view(-1, 1, 1, 1)
