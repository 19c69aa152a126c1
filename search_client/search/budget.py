"""A latency budget (`dnas search --target-ms`): the most probable architecture under P_theta within the budget.

The search pulls the *expected* latency toward the target; the architecture it returns is chosen exactly: among all
9^22 architectures, the one with the highest probability under P_theta (the sum of the layers' log-probabilities)
whose predicted latency lies in [(1 - WINDOW) T, T] - within the budget, and not so far under it that latency is
left unspent (a network well under budget could have bought accuracy with it). That is a multiple-choice knapsack,
solved exactly by dynamic programming over the layers on a grid of latency bins. Where no architecture falls in
the window, the most probable one under T is returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fbnet_core.blocks import CANDIDATES
from search_client.errors import InvalidSearchConfigError
from search_client.lut.latency import LatencyTable

WINDOW = 0.05  # the budget's lower edge: 5 % under the target
GRID_BINS = 4000  # latency bins up to the target: block costs are rounded up to T / GRID_BINS


@dataclass(frozen=True)
class BudgetChoice:
    blocks: list[str]
    predicted_ms: float
    log_probability: float
    in_window: bool  # predicted within [(1 - WINDOW) T, T]


def fastest_architecture(table: LatencyTable) -> list[str]:
    return [CANDIDATES[index] for index in table.block_ms.argmin(dim=1).tolist()]


def table_ms(table: LatencyTable, blocks: list[str]) -> float:
    """An architecture's latency in the table: the search's term, equal to fbnet_core.predict's prediction."""
    return float(sum(table.block_ms[layer, CANDIDATES.index(name)] for layer, name in enumerate(blocks))) + (
        table.fixed_ms
    )


def check_target(table: LatencyTable, target_ms: float) -> None:
    """Refuse a target no architecture of the space can meet, naming the fastest one."""
    fastest_ms = table.min_ms()
    if target_ms < fastest_ms:
        raise InvalidSearchConfigError(
            f"--target-ms {target_ms:g} is below the fastest architecture of this LUT, {fastest_ms:.3f} ms "
            f"({'-'.join(fastest_architecture(table))})"
        )


def most_probable_within(table: LatencyTable, theta: torch.Tensor, target_ms: float) -> BudgetChoice:
    """The architecture of highest P_theta with predicted latency in [(1 - WINDOW) T, T] (else the best <= T)."""
    check_target(table, target_ms)
    log_p = torch.log_softmax(theta.detach().double().cpu(), dim=1).numpy()
    block_ms = table.block_ms.double().numpy()
    budget_ms = target_ms - table.fixed_ms
    bin_ms = max(budget_ms, 1e-12) / GRID_BINS
    # Rounding every block up keeps a grid total over the true one: a grid-feasible choice is truly under T.
    cost_bins = np.maximum(np.ceil(block_ms / bin_ms - 1e-9), 0).astype(np.int64)
    layers, candidates = block_ms.shape
    best = np.full(GRID_BINS + 1, -math.inf)
    best[0] = 0.0
    choice_per_bin = np.zeros((layers, GRID_BINS + 1), dtype=np.int64)
    for layer in range(layers):
        scores = np.full(GRID_BINS + 1, -math.inf)
        for candidate in range(candidates):
            cost = cost_bins[layer, candidate]
            if cost > GRID_BINS:
                continue
            shifted = np.full(GRID_BINS + 1, -math.inf)
            shifted[cost:] = best[: GRID_BINS + 1 - cost] + log_p[layer, candidate]
            better = shifted > scores
            scores[better] = shifted[better]
            choice_per_bin[layer, better] = candidate
        best = scores
    if not np.isfinite(best).any():  # rounding up can push the fastest architecture off a tight grid
        blocks = fastest_architecture(table)
        return _choice(table, blocks, log_p, target_ms)
    low_bin = max(0, math.floor(((1.0 - WINDOW) * target_ms - table.fixed_ms) / bin_ms))
    in_window_scores = np.where(np.arange(GRID_BINS + 1) >= low_bin, best, -math.inf)
    # A grid total overstates the true one by up to one bin per layer, so an end bin inside the window can hold an
    # architecture truly just under it: the bins are tried from the most probable down, each checked exactly.
    for end in np.argsort(-in_window_scores, kind="stable"):
        if not np.isfinite(in_window_scores[end]):
            break
        choice = _choice(table, _backtrack(choice_per_bin, cost_bins, int(end)), log_p, target_ms)
        if choice.in_window:
            return choice
    return _choice(table, _backtrack(choice_per_bin, cost_bins, int(np.argmax(best))), log_p, target_ms)


def _backtrack(choice_per_bin: np.ndarray, cost_bins: np.ndarray, end: int) -> list[str]:
    """The blocks of the best architecture whose grid total is `end` bins."""
    picked: list[int] = []
    for layer in reversed(range(choice_per_bin.shape[0])):
        candidate = int(choice_per_bin[layer, end])
        picked.append(candidate)
        end -= int(cost_bins[layer, candidate])
    return [CANDIDATES[index] for index in reversed(picked)]


def _choice(table: LatencyTable, blocks: list[str], log_p: np.ndarray, target_ms: float) -> BudgetChoice:
    predicted_ms = table_ms(table, blocks)
    log_probability = float(sum(log_p[layer, CANDIDATES.index(name)] for layer, name in enumerate(blocks)))
    in_window = (1.0 - WINDOW) * target_ms <= predicted_ms <= target_ms
    return BudgetChoice(blocks, predicted_ms, log_probability, in_window)
