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
