"""The end of a weighted supernet layer, sum_k m_k * BatchNorm_k(p_k) + sum_j n_j * e_j, as one autograd node.

p_k are the candidates' projections before their last BatchNorm, e_j terms without one (the skip candidate, the
residual input), m and n per-sample weights. Written with torch ops, each candidate's normalised output and its
scaled copy are separate full-size tensors, every op is a pass over memory and autograd keeps them for backward.
Here each sample's weight is folded into the BatchNorm's per-channel scale and shift,

    m_bk * BN_k(p_k)[b, c] = p_k[b, c] * (m_bk * gamma_kc * rstd_kc) + m_bk * (beta_kc - mean_kc * gamma_kc * rstd_kc),

so the forward pass reads each projection once and writes the sum, and backward keeps only the projections (a
BatchNorm keeps its input anyway) and recomputes what it needs from them: per candidate one reduction for the
weight's and gamma's gradients and one fused pass for the projection's gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from search_client.search.norm_state import (
    normalises_locally,
    normalising_statistics,
    uses_batch_statistics,
)


def weighted_norm_sum(
    projections: Sequence[torch.Tensor],
    norms: Sequence[nn.Module],
    norm_weights: torch.Tensor,
    extras: Sequence[torch.Tensor] = (),
    extra_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum_k norm_weights[:, k] * norms[k](projections[k]) + sum_j extra_weights[:, j] * extras[j], weights
    (batch, k) and (batch, j); the norms' running statistics are updated as their own forward would."""
    batch = norm_weights.shape[0]
    extras, extra_columns = list(extras), [] if extra_weights is None else list(extra_weights.unbind(1))
    folded: list[tuple[torch.Tensor, _BatchNorm]] = []
    folded_columns = []
    for projection, norm, column in zip(projections, norms, norm_weights.unbind(1), strict=True):
        if isinstance(norm, _BatchNorm) and normalises_locally(norm):
            folded.append((projection, norm))
            folded_columns.append(column)
        else:  # a SyncBatchNorm that synchronises: its own forward, weighted like a term without BatchNorm
            extras.append(norm(projection))
            extra_columns.append(column)
    if len(extras) != len(extra_columns):
        raise ValueError("weighted_norm_sum needs one extra weight column per extra term")
    if not folded:
        return sum((e * w.view(-1, 1, 1, 1) for e, w in zip(extras, extra_columns, strict=True)))  # type: ignore[return-value]
    statistics = [normalising_statistics(projection, norm) for projection, norm in folded]
    empty = norm_weights.new_zeros(batch, 0)
    return _WeightedNormSum.apply(
        len(folded),
        [uses_batch_statistics(norm) for _, norm in folded],
        torch.stack(folded_columns, 1),
        torch.stack(extra_columns, 1) if extra_columns else empty,
        *(projection for projection, _ in folded),
        *(norm.weight for _, norm in folded),
        *(norm.bias for _, norm in folded),
        *(mean for mean, _ in statistics),
        *(rstd for _, rstd in statistics),
        *extras,
    )


def _channel(vector: torch.Tensor) -> torch.Tensor:
    return vector.view(1, -1, 1, 1)


def _sample_channel(matrix: torch.Tensor) -> torch.Tensor:
    return matrix.view(*matrix.shape, 1, 1)


class _WeightedNormSum(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        count: int,
        batch_statistics: list[bool],
        weights: torch.Tensor,
        extra_weights: torch.Tensor,
        *tensors: torch.Tensor,
    ) -> torch.Tensor:
        projections, gammas, betas, means, rstds = (
            list(tensors[index * count : (index + 1) * count]) for index in range(5)
        )
        extras = list(tensors[5 * count :])
        # Per sample and channel: scale_k = m_k * gamma_k * rstd_k; one shift summed over the candidates.
        unit_scales = [gamma * rstd for gamma, rstd in zip(gammas, rstds, strict=True)]
        shift = sum(
            weights[:, k : k + 1] * (betas[k] - means[k] * unit_scales[k]) for k in range(count)
        )
        output = torch.addcmul(
            _sample_channel(shift), projections[0], _sample_channel(weights[:, :1] * unit_scales[0])
        )
        for k in range(1, count):
            output.addcmul_(projections[k], _sample_channel(weights[:, k : k + 1] * unit_scales[k]))
        for j, extra in enumerate(extras):
            output.addcmul_(extra, extra_weights[:, j].view(-1, 1, 1, 1))
        ctx.count, ctx.batch_statistics = count, batch_statistics
        ctx.save_for_backward(weights, extra_weights, *tensors)
        return output

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        count = ctx.count
        weights, extra_weights, *tensors = ctx.saved_tensors
        projections, gammas, betas, means, rstds = (
            tensors[index * count : (index + 1) * count] for index in range(5)
        )
        extras = tensors[5 * count :]
        needs = ctx.needs_input_grad[4:]
        grad_sum = grad.sum((2, 3))  # (batch, channels)
        grad_weights = torch.empty_like(weights)
        grad_projections: list[torch.Tensor | None] = []
        grad_gammas: list[torch.Tensor | None] = []
        grad_betas: list[torch.Tensor | None] = []
        for k in range(count):
            weight, gamma, beta = weights[:, k : k + 1], gammas[k], betas[k]
            projection, mean, rstd = projections[k], means[k], rstds[k]
            # sum over pixels of grad * xhat, xhat = (p - mean) * rstd, from one reduction over grad * p.
            grad_xhat = rstd * ((grad * projection).sum((2, 3)) - mean * grad_sum)
            grad_weights[:, k] = (grad_xhat * gamma + grad_sum * beta).sum(1)
            grad_gamma = (weight * grad_xhat).sum(0)
            grad_beta = (weight * grad_sum).sum(0)
            grad_gammas.append(grad_gamma if needs[count + k] else None)
            grad_betas.append(grad_beta if needs[2 * count + k] else None)
            if not needs[k]:
                grad_projections.append(None)
                continue
            unit_scale = gamma * rstd
            sample_scale = _sample_channel(weight * unit_scale)
            if ctx.batch_statistics[k]:
                # BatchNorm's backward through the batch mean and variance: p * slope + offset per channel.
                pixels = projection.numel() / projection.shape[1]
                slope = -unit_scale * rstd * grad_gamma / pixels
                offset = -unit_scale * (grad_beta - mean * rstd * grad_gamma) / pixels
                grad_projection = torch.addcmul(_channel(offset), projection, _channel(slope))
                grad_projection.addcmul_(grad, sample_scale)
            else:
                grad_projection = grad * sample_scale
            grad_projections.append(grad_projection)
        grad_extra_weights = torch.empty_like(extra_weights)
        grad_extras: list[torch.Tensor | None] = []
        for j, extra in enumerate(extras):
            grad_extra_weights[:, j] = (grad * extra).sum((1, 2, 3))
            needed = needs[5 * count + j]
            grad_extras.append(grad * extra_weights[:, j].view(-1, 1, 1, 1) if needed else None)
        return (
            None,
            None,
            grad_weights,
            grad_extra_weights,
            *grad_projections,
            *grad_gammas,
            *grad_betas,
            *([None] * (2 * count)),
            *grad_extras,
        )
