"""The FBNet supernet: every searchable layer holds all candidate blocks and its architecture parameters theta_l.

`weighted` mode is the paper's: each layer outputs sum_k m_k * block_k(x) with per-sample Gumbel-softmax
weights m. `single_path` draws a hard (one-hot, straight-through) m per sample, groups the batch by the drawn
candidate and runs only the candidates that were drawn: the forward cost of one network, and theta still
receives gradients through the soft weights behind the straight-through estimator.

`forward` returns the logits *and* the weights it used, so the latency term is computed from the very same m.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from search_client.blocks import CANDIDATES, make_block
from search_client.gumbel import gumbel_softmax_weights, sample_gumbel_noise
from search_client.model import make_classifier, make_head, make_stem
from search_client.space import SearchSpace

SupernetMode = Literal["weighted", "single_path"]
SUPERNET_MODES: tuple[SupernetMode, ...] = ("weighted", "single_path")


class Supernet(nn.Module):
    def __init__(self, space: SearchSpace, mode: SupernetMode = "weighted") -> None:
        super().__init__()
        if mode not in SUPERNET_MODES:
            raise ValueError(f"mode must be one of {SUPERNET_MODES}, got {mode!r}")
        self.space, self.mode = space, mode
        self.stem = make_stem(space.stem)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                make_block(name, layer.in_channels, layer.out_channels, layer.stride) for name in CANDIDATES
            )
            for layer in space.layers
        )
        self.head = make_head(space.head)
        self.classifier = make_classifier(space.classifier)
        # Uniform start: every candidate equally likely (P = softmax(0)).
        self.theta = nn.Parameter(torch.zeros(len(space.layers), len(CANDIDATES)))

    def weight_parameters(self) -> list[nn.Parameter]:
        return [param for name, param in self.named_parameters() if name != "theta"]

    def forward(
        self,
        images: torch.Tensor,
        temperature: float,
        noise: torch.Tensor | None = None,
        mode: SupernetMode | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (batch, classes) and the Gumbel-softmax weights used, (batch, layers, candidates).

        `noise` (Gumbel, same shape as the weights) can be given to replay a draw - zeros give the argmax path in
        `single_path` mode; by default it is drawn from torch's global generator, one draw per sample.
        `mode` overrides the supernet's own for this call (evaluation runs the argmax path of any supernet).
        """
        mode = mode or self.mode
        if noise is None:
            noise = sample_gumbel_noise(images.shape[0], self.theta)
        weights = gumbel_softmax_weights(self.theta, noise, temperature, hard=mode == "single_path")
        x = self.stem(images)
        for layer_index, candidates in enumerate(self.layers):
            layer_weights = weights[:, layer_index]
            if mode == "weighted":
                x = _weighted_sum(candidates, layer_weights, x)
            else:
                x = _single_path(candidates, layer_weights, x)
        return self.classifier(self.head(x)), weights

    def argmax_blocks(self) -> list[str]:
        """The most likely candidate of each layer under P_theta."""
        return [CANDIDATES[index] for index in self.theta.argmax(dim=1).tolist()]

    def sample_blocks(self, count: int, generator: torch.Generator) -> list[list[str]]:
        """`count` architectures drawn from P_theta = softmax(theta), independently per layer."""
        if count == 0:
            return []
        probabilities = torch.softmax(self.theta.detach().float().cpu(), dim=1)
        draws = torch.multinomial(
            probabilities, count, replacement=True, generator=generator
        )  # (layers, count)
        return [[CANDIDATES[index] for index in draws[:, column].tolist()] for column in range(count)]

    def probabilities(self) -> torch.Tensor:
        return torch.softmax(self.theta.detach().float().cpu(), dim=1)


def _broadcast(weights: torch.Tensor) -> torch.Tensor:
    return weights.view(-1, 1, 1, 1)


def _weighted_sum(candidates: nn.ModuleList, weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    output = _broadcast(weights[:, 0]) * candidates[0](x)
    for index in range(1, len(candidates)):
        output = output + _broadcast(weights[:, index]) * candidates[index](x)
    return output


def _single_path(candidates: nn.ModuleList, weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Run each drawn candidate on its group of samples only; scale by the (one-hot, straight-through) weight."""
    drawn = weights.argmax(dim=1)
    output: torch.Tensor | None = None
    for index in drawn.unique().tolist():
        rows = (drawn == index).nonzero().squeeze(1)
        group = candidates[index](x.index_select(0, rows)) * _broadcast(
            weights.index_select(0, rows)[:, index]
        )
        if output is None:
            output = group.new_zeros((x.shape[0], *group.shape[1:]))
        output = output.index_copy(0, rows, group)
    assert output is not None  # a batch has at least one sample, so at least one candidate was drawn
    return output
