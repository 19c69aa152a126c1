"""The search schedule: temperature, weights-only warm-up, the fixed 80/20 split and the theta phase's steps.

The paper anneals the Gumbel temperature from 5 by exp(-0.045) per epoch over 90 epochs, to about 0.09 at the end,
where P_theta's samples are nearly one-hot and the argmax has settled; a search of E epochs runs the same
trajectory unless a decay is given. Its theta phase is one pass over the 20 % split per epoch with Adam at lr 0.01:
on ImageNet-100 about 135 steps an epoch, some 11,000 in all. A small data set gives theta a few steps an epoch
(digits: 9 batches of 32), so by default each theta epoch runs at least `MIN_THETA_STEPS_PER_EPOCH` steps (several
passes over the split, reshuffled each pass) and Adam's learning rate is raised so that lr x steps, the distance
Adam can move theta over the search, is at least `THETA_TRAVEL`: enough to separate a layer's candidates by many
times the Gumbel noise's spread (about 1.3), so that the argmax commits. At the paper's scale both rules leave its
settings as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PAPER_INITIAL_TEMPERATURE = 5.0
PAPER_TEMPERATURE_DECAY = 0.045  # per epoch
PAPER_EPOCHS = 90
PAPER_FINAL_TEMPERATURE = PAPER_INITIAL_TEMPERATURE * math.exp(-PAPER_TEMPERATURE_DECAY * PAPER_EPOCHS)
PAPER_THETA_LR = 0.01
MIN_THETA_STEPS_PER_EPOCH = 27
THETA_TRAVEL = 10.0


def temperature(epoch: int, initial: float = 5.0, decay_per_epoch: float = 0.045) -> float:
    """tau(epoch) = initial * exp(-decay * epoch); the paper's 5.0 and 0.045 give x0.956 per epoch."""
    return initial * math.exp(-decay_per_epoch * epoch)


def fitted_temperature_decay(epochs: int, initial: float = PAPER_INITIAL_TEMPERATURE) -> float:
    """The per-epoch decay that takes tau from `initial` at the first epoch to the paper's final temperature
    (5 exp(-0.045 x 90), about 0.087) at the last one; 0 for a one-epoch search."""
    if epochs <= 1:
        return 0.0
    return math.log(initial / PAPER_FINAL_TEMPERATURE) / (epochs - 1)


def warmup_epochs(total_epochs: int, fraction: float = 0.1) -> int:
    """Epochs that train the weights only (theta frozen): `fraction` of the search, at least one when searching."""
    if total_epochs <= 1:
        return 0
    return min(total_epochs - 1, max(1, round(fraction * total_epochs)))


def theta_passes_per_epoch(batches_per_pass: int, min_steps: int = MIN_THETA_STEPS_PER_EPOCH) -> int:
    """Passes over the theta split per epoch so that theta takes at least `min_steps` steps an epoch."""
    return max(1, math.ceil(min_steps / max(1, batches_per_pass)))


def theta_learning_rate(total_steps: int, travel: float = THETA_TRAVEL) -> float:
    """Adam's lr for theta: the paper's 0.01, raised where lr x steps would fall short of `travel`."""
    return max(PAPER_THETA_LR, travel / max(1, total_steps))


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
