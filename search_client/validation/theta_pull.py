"""How hard each term of the search loss pulls on theta: a diagnostic for "why did the latency term not matter?".

The loss depends on theta only through the batch's cross-entropy and its expected latency, so its gradient is
exactly the sum of two parts: the cross-entropy's (the loss with the latency detached) and the latency's (the loss
with the cross-entropy detached). Averaged over batches, each part's mean is the *pull* that moves theta
consistently; the batch-to-batch spread of the cross-entropy part is noise that Adam has to average out.
Averaged over n steps, that noise shrinks as 1 / sqrt(n) while a steady pull stays, so the pull of size b shows
through noise of size s after about (s / b)^2 steps: `theta_samples_needed` counts them in samples, for the
theta entry where the latency pull stands out most, to set against the samples a search gives theta.
On digits the paper's CE * alpha * log(LAT)^beta on plain cross-entropy gives a latency pull much weaker than
the cross-entropy's (docs/search.md, the loss): with a train CE near 0.1, a small CE change is a large relative change of
the loss, while LAT's relative sensitivity is only beta / log(LAT).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from search_client.lut.latency import LatencyTable
from search_client.search.loss import LossConfig, search_loss
from search_client.search.loss import cross_entropy as search_cross_entropy
from search_client.search.supernet import Supernet


@dataclass(frozen=True)
class ThetaPull:
    cross_entropy_pull: float  # L2 norm of the batch-mean cross-entropy part of d loss / d theta
    latency_pull: float  # L2 norm of the batch-mean latency part
    cross_entropy_noise: float  # L2 norm of the per-entry std over batches of the cross-entropy part
    batches: int
    batch_size: int
    # max over theta entries of |mean latency part| / std of the cross-entropy part (per batch of batch_size)
    latency_signal_to_noise: float

    @property
    def theta_samples_needed(self) -> float:
        """Samples of theta training before the latency pull on its best entry outgrows the averaged CE noise."""
        if self.latency_signal_to_noise == 0.0:
            return float("inf")
        return self.batch_size / self.latency_signal_to_noise**2

    @property
    def latency_over_cross_entropy(self) -> float:
        return self.latency_pull / self.cross_entropy_pull if self.cross_entropy_pull else float("inf")

    def describe(self) -> str:
        return (
            f"theta pull over {self.batches} batches: latency {self.latency_pull:.3g}, cross-entropy "
            f"{self.cross_entropy_pull:.3g} (latency / CE = {self.latency_over_cross_entropy:.3g}; CE batch noise "
            f"{self.cross_entropy_noise:.3g}); best entry's latency pull / CE noise {self.latency_signal_to_noise:.3g}"
            f" per batch of {self.batch_size}: ~{self.theta_samples_needed:,.0f} theta samples to outgrow the noise"
        )


def measure_theta_pull(
    supernet: Supernet,
    table: LatencyTable,
    loss: LossConfig,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    temperature: float,
) -> ThetaPull:
    """Both parts of d loss / d theta per batch (fresh Gumbel draws, train-mode BatchNorm as in a theta step);
    `loss`'s defaults are filled in for `table` as a search fills them (LossConfig.resolved)."""
    loss = loss.resolved(table.min_ms())
    cross_entropy_parts: list[torch.Tensor] = []
    latency_parts: list[torch.Tensor] = []
    batch_sizes: set[int] = set()
    supernet.train()
    for images, labels in batches:
        batch_sizes.add(len(labels))
        cross_entropy_part, latency_part = theta_gradient_parts(
            supernet, table, loss, images, labels, temperature
        )
        cross_entropy_parts.append(cross_entropy_part)
        latency_parts.append(latency_part)
    if len(cross_entropy_parts) < 2:
        raise ValueError("measuring the pull on theta needs at least two batches (the noise is a spread)")
    if len(batch_sizes) > 1:
        # The noise is a per-batch spread: batches of different sizes have different spreads.
        raise ValueError(f"measuring the pull on theta needs batches of one size, got {sorted(batch_sizes)}")
    cross_entropy = torch.stack(cross_entropy_parts)
    latency = torch.stack(latency_parts)
    return ThetaPull(
        cross_entropy_pull=float(cross_entropy.mean(0).norm()),
        latency_pull=float(latency.mean(0).norm()),
        cross_entropy_noise=float(cross_entropy.std(0).norm()),
        batches=len(cross_entropy_parts),
        batch_size=batch_sizes.pop(),
        latency_signal_to_noise=_best_signal_to_noise(latency.mean(0), cross_entropy.std(0)),
    )


def _best_signal_to_noise(signal: torch.Tensor, noise: torch.Tensor) -> float:
    ratio = signal.abs() / noise
    ratio[signal == 0] = 0.0  # entries no term reaches, e.g. the latency of a latency-unaware loss
    return float(ratio.max())


def theta_gradient_parts(
    supernet: Supernet,
    table: LatencyTable,
    loss: LossConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """d loss / d theta of one batch, split into its cross-entropy part and its latency part (they sum to it)."""
    logits, weights = supernet(images, temperature)
    cross_entropy = search_cross_entropy(logits, labels, loss)
    latency_ms = table.expected_ms(weights).mean()
    return (
        _theta_grad(supernet, search_loss(cross_entropy, latency_ms.detach(), loss)),
        _theta_grad(supernet, search_loss(cross_entropy.detach(), latency_ms, loss)),
    )


def _theta_grad(supernet: Supernet, loss: torch.Tensor) -> torch.Tensor:
    if not loss.requires_grad:  # e.g. the latency part of a latency-unaware loss
        return torch.zeros_like(supernet.theta)
    (gradient,) = torch.autograd.grad(loss, supernet.theta, retain_graph=True)
    return gradient.detach()
