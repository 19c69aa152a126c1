"""The FBNet supernet: every searchable layer holds all candidate blocks and its architecture parameters theta_l.

`weighted` mode is the paper's: each layer outputs sum_k m_k * block_k(x) with per-sample Gumbel-softmax
weights m (computed with the candidates fused, see supernet_layer.py). `single_path` splits the batch into
`path_groups` sample groups; each group shares one hard (one-hot, straight-through) draw per layer and runs
only the candidate drawn for it: at most `path_groups` candidates per layer, one network per step with the
default of 1 (the cost of a plain network, and BatchNorm sees the whole batch), and theta still receives
gradients through the soft weights behind the straight-through estimator.

`reference=True` computes the weighted mode the straightforward way (`SupernetLayer.weighted_reference`), for
the tests and the benchmark that check the fused computation against it.

`forward` returns the logits *and* the weights it used, so the latency term is computed from the very same m.
"""

from __future__ import annotations

import torch
from torch import nn

from fbnet_core.blocks import CANDIDATES
from fbnet_core.space import SearchSpace
from search_client.search.choices import DEFAULT_PATH_GROUPS, SUPERNET_MODES, SupernetMode
from search_client.search.gumbel import (
    gumbel_softmax_weights,
    path_group_count,
    sample_gumbel_noise,
    share_within_groups,
)
from search_client.search.supernet_layer import SupernetLayer
from search_client.search.torch_device import activation_layout
from search_client.space.model import make_classifier, make_head, make_stem


class Supernet(nn.Module):
    def __init__(
        self,
        space: SearchSpace,
        mode: SupernetMode = "weighted",
        path_groups: int = DEFAULT_PATH_GROUPS,
        *,
        reference: bool = False,
    ) -> None:
        super().__init__()
        if mode not in SUPERNET_MODES:
            raise ValueError(f"mode must be one of {SUPERNET_MODES}, got {mode!r}")
        if path_groups < 1:
            raise ValueError(f"path_groups must be at least 1, got {path_groups}")
        self.space, self.mode, self.path_groups, self.reference = space, mode, path_groups, reference
        self.stem = make_stem(space.stem)
        self.layers = nn.ModuleList(SupernetLayer(layer) for layer in space.layers)
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
        `single_path` mode; by default it is drawn from torch's global generator, one draw per sample. In
        `single_path` mode each sample group uses its first sample's noise, so the weights returned are those
        of its group, identical within it (see `share_within_groups`).
        `mode` overrides the supernet's own for this call (evaluation runs the argmax path of any supernet).
        """
        mode = mode or self.mode
        if noise is None:
            noise = sample_gumbel_noise(images.shape[0], self.theta)
        group_count = path_group_count(images.shape[0], self.path_groups)
        if mode == "single_path":
            noise = share_within_groups(noise, group_count)
        weights = gumbel_softmax_weights(self.theta, noise, temperature, hard=mode == "single_path")
        if not self.reference:
            # Both modes run in the device's training layout from the stem on (channels-last on the CPU), so that
            # the layers never copy between layouts.
            images = images.contiguous(memory_format=activation_layout(images.device))
        x = self.stem(images)
        # The candidates drawn for each sample group, read once per step: (groups, layers).
        drawn = weights[:group_count].argmax(-1).T.tolist() if mode == "single_path" else []
        for layer_index, layer in enumerate(self.layers):
            layer_weights = weights[:, layer_index]
            if mode == "single_path":
                x = layer.single_path(x, layer_weights, group_count, drawn[layer_index])
            elif self.reference:
                x = layer.weighted_reference(x, layer_weights)
            else:
                x = layer.weighted(x, layer_weights)
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
