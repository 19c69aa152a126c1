"""Per-sample Gumbel-softmax weights over each layer's candidates (FBNet eq. 6), soft or straight-through hard."""

from __future__ import annotations

import torch


def sample_gumbel_noise(
    batch: int, theta: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Standard Gumbel noise of shape (batch, *theta.shape): one independent draw per sample, layer and candidate."""
    uniform = torch.rand((batch, *theta.shape), generator=generator, dtype=theta.dtype, device=theta.device)
    # Clamp away from 0 and 1 so that -log(-log(u)) stays finite.
    tiny = torch.finfo(theta.dtype).tiny
    uniform = uniform.clamp(min=tiny, max=1.0 - torch.finfo(theta.dtype).eps)
    return -torch.log(-torch.log(uniform))


def gumbel_softmax_weights(
    theta: torch.Tensor, noise: torch.Tensor, temperature: float, hard: bool
) -> torch.Tensor:
    """m = softmax((theta + g) / tau) over the last axis, shape (batch, layers, candidates).

    With `hard`, the forward value is the one-hot argmax and the gradient is the soft one's (straight-through),
    so a single-path forward still trains theta.
    """
    soft = torch.softmax((theta.unsqueeze(0) + noise) / temperature, dim=-1)
    if not hard:
        return soft
    index = soft.argmax(dim=-1, keepdim=True)
    one_hot = torch.zeros_like(soft).scatter_(-1, index, 1.0)
    return one_hot - soft.detach() + soft


def path_group_count(batch: int, groups: int) -> int:
    """`groups` clamped to the batch, with at least two samples per group where the batch allows:
    training-mode BatchNorm on a 1x1 feature map needs two values per channel."""
    return max(1, min(groups, batch // 2))


def share_within_groups(noise: torch.Tensor, group_count: int) -> torch.Tensor:
    """Sample i belongs to group i mod `group_count` and takes the noise of its group's first sample: one draw
    per group, layer and candidate. Dealing samples round-robin is also how `shard_batch` deals them to ranks, so
    R processes with G groups each draw exactly what one process with R * G groups draws over the whole batch."""
    members = torch.arange(noise.shape[0], device=noise.device)
    return noise.index_select(0, members % group_count)
