"""One searchable layer of the supernet: its candidate blocks and the ways the search runs them.

The candidates are the plain `blocks.py` modules and own every parameter and statistic, so the layer's state
is theirs (`layers.<l>.<k>.*`) and any candidate exports as a standalone block. Only the computation differs:

`weighted` is the paper's sum_k m_k * block_k(x) with per-sample weights m. On the CPU it runs on channels-last
data throughout (oneDNN's convolutions, BatchNorm and depthwise kernels work on it without layout copies) and
each candidate on its own activations, so that no activation is concatenated, split or re-ordered: the
grouped candidates' channel shuffle is folded into their expansion weights, and the candidates' last BatchNorm,
the per-sample weighting and the sum are one autograd node (`weighted_norm.py`). Exactly the same function,
gradients and running statistics as `weighted_reference`, the sum written the straightforward way
(tests/dnas/test_supernet_layer.py).

`single_path` runs one candidate per sample group: the candidate drawn for the group, on the group's samples.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fbnet_core.blocks import CANDIDATES
from fbnet_core.space import LayerSpec
from search_client.search.norm_state import normalises_locally, permuted_batch_norm
from search_client.search.weighted_norm import weighted_norm_sum
from search_client.space.blocks import ChannelShuffle, InvertedResidual, make_block
from search_client.space.depthwise import DepthwiseConv2d


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
        self.use_residual = layer.stride == 1 and layer.in_channels == layer.out_channels
        self.skip_index = CANDIDATES.index("skip")
        self.block_indices = [
            index for index, block in enumerate(self) if isinstance(block, InvertedResidual)
        ]
        # The blocks' columns of the weights, as a slice where they are contiguous (skip last: always, with the
        # paper's candidates): a slice is a view, an index list a gather with a scatter in backward, every layer.
        first, last = self.block_indices[0], self.block_indices[-1]
        contiguous = self.block_indices == list(range(first, last + 1))
        self.block_columns: slice | list[int] = slice(first, last + 1) if contiguous else self.block_indices
        for module in self.modules():
            if isinstance(module, DepthwiseConv2d):
                module.crop_to_map = True
        for index in self.block_indices:
            block = self[index]
            if isinstance(block.shuffle, ChannelShuffle):
                order = shuffle_index(block.shuffle.groups, block.dw[0].in_channels)
                self.register_buffer(f"shuffle_order_{index}", order, persistent=False)

    def weighted(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_k weights[:, k] * candidate_k(x), weights (batch, candidates)."""
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        blocks = [self[index] for index in self.block_indices]
        projections = [
            block.pwl[0](block.dw(self._expansion(index, x)))
            for index, block in zip(self.block_indices, blocks, strict=True)
        ]
        block_weights = weights[:, self.block_columns]
        skip, skip_weight = self[self.skip_index], weights[:, self.skip_index]
        if self.use_residual and isinstance(skip, nn.Identity):
            # m_skip * x + sum_k m_k * x in one term.
            extras, extra_weights = [x], [skip_weight + block_weights.sum(1)]
        else:
            extras, extra_weights = [skip(x)], [skip_weight]
            if self.use_residual:
                extras.append(x)
                extra_weights.append(block_weights.sum(1))
        norms = [block.pwl[1] for block in blocks]
        return weighted_norm_sum(projections, norms, block_weights, extras, torch.stack(extra_weights, 1))

    def _expansion(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Candidate `index`'s expansion (1x1 conv + BN + activation) followed by its channel shuffle; the
        shuffle as the order of the expansion's output channels, so that no activation is copied for it."""
        block = self[index]
        if not isinstance(block.shuffle, ChannelShuffle) or not normalises_locally(block.pw[1]):
            return block.shuffle(block.pw(x))
        order = getattr(self, f"shuffle_order_{index}")
        hidden = F.conv2d(x, dense_pointwise_weight(block.pw[0]).index_select(0, order))
        return block.pw[2](permuted_batch_norm(hidden, block.pw[1], order))

    def weighted_reference(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The same sum written the straightforward way, every candidate's output weighted and added up: the
        reference that `weighted` is tested and benchmarked against."""
        output = _per_sample(weights[:, 0]) * self[0](x)
        for index in range(1, len(self)):
            output = output + _per_sample(weights[:, index]) * self[index](x)
        return output

    def single_path(
        self, x: torch.Tensor, weights: torch.Tensor, group_count: int, drawn: list[int]
    ) -> torch.Tensor:
        """Each sample group (sample i in group i mod `group_count`) through the candidate drawn for it
        (`drawn[group]`), scaled by its one-hot, straight-through weight so that theta receives the gradient."""
        if group_count == 1:
            return self._run_drawn(x, weights, drawn[0])
        members = [
            torch.arange(group, x.shape[0], group_count, device=x.device) for group in range(group_count)
        ]
        outputs = [
            self._run_drawn(x.index_select(0, rows), weights.index_select(0, rows), drawn[group])
            for group, rows in enumerate(members)
        ]
        return torch.cat(outputs).index_select(0, torch.cat(members).argsort())

    def _run_drawn(self, x: torch.Tensor, weights: torch.Tensor, index: int) -> torch.Tensor:
        return straight_through_scale(self[index](x), weights[:, index])


class _StraightThroughScale(torch.autograd.Function):
    """output * weight per sample, for a weight whose value is 1 up to rounding: the one-hot of a hard,
    straight-through draw (`one_hot - soft.detach() + soft`). Forward is the block's output itself (no pass over
    memory); backward passes the gradient on and gives the weight sum(grad * output) per sample, its gradient
    through the product. The block keeps its own BatchNorm and residual, as in the plain network."""

    @staticmethod
    def forward(ctx: Any, output: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(output)
        return output.view_as(output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        (output,) = ctx.saved_tensors
        return grad, (grad * output).sum((1, 2, 3))


def straight_through_scale(output: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`output` scaled by the straight-through `weight` (batch,), whose forward value is 1."""
    return _StraightThroughScale.apply(output, weight)


def _per_sample(weights: torch.Tensor) -> torch.Tensor:
    return weights.view(-1, 1, 1, 1)
