"""The search schedule of the paper: temperature decay, weights-only warm-up, and the fixed 80/20 split."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def temperature(epoch: int, initial: float = 5.0, decay_per_epoch: float = 0.045) -> float:
    """tau(epoch) = initial * exp(-decay * epoch); the paper's 5.0 and 0.045 give x0.956 per epoch."""
    return initial * math.exp(-decay_per_epoch * epoch)


def warmup_epochs(total_epochs: int, fraction: float = 0.1) -> int:
    """Epochs that train the weights only (theta frozen): `fraction` of the search, at least one when searching."""
    if total_epochs <= 1:
        return 0
    return min(total_epochs - 1, max(1, round(fraction * total_epochs)))


@dataclass(frozen=True)
class SearchSplit:
    """Indices into the training set: weights are trained on one part, theta on the other; they never overlap."""

    weight_indices: torch.Tensor
    theta_indices: torch.Tensor


def split_for_search(num_samples: int, weight_fraction: float = 0.8, seed: int = 0) -> SearchSplit:
    """A seeded permutation cut at `weight_fraction`: the same seed gives the same split in every process."""
    if not 0.0 < weight_fraction < 1.0:
        raise ValueError(f"weight_fraction must be in (0, 1), got {weight_fraction}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_samples, generator=generator)
    cut = int(round(weight_fraction * num_samples))
    if cut == 0 or cut == num_samples:
        raise ValueError(f"{num_samples} samples are too few for a {weight_fraction:.0%} split")
    return SearchSplit(weight_indices=order[:cut], theta_indices=order[cut:])
