"""`--target-ms`: the most probable architecture within the budget window (checked against brute force on a small
table), the fallback under the target, and the refusal of a target below the fastest architecture."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from fbnet_core.blocks import CANDIDATES as BLOCK_NAMES
from search_client.errors import InvalidSearchConfigError
from search_client.lut.latency import LatencyTable
from search_client.search.budget import WINDOW, check_target, most_probable_within, table_ms

CANDIDATES = BLOCK_NAMES[:3]  # a small table: the first three candidates, in every layer


def small_table() -> LatencyTable:
    block_ms = torch.tensor([[0.10, 0.25, 0.40], [0.05, 0.20, 0.35], [0.00, 0.15, 0.30], [0.12, 0.22, 0.31]])
    return LatencyTable(block_ms=block_ms, fixed_ms=0.2)


def brute_force(table: LatencyTable, theta: torch.Tensor, low_ms: float, high_ms: float) -> tuple[float, list[str]]:
    log_p = torch.log_softmax(theta.double(), dim=1)
    best: tuple[float, list[str]] = (-math.inf, [])
    for columns in itertools.product(range(3), repeat=table.block_ms.shape[0]):
        blocks = [CANDIDATES[c] for c in columns]
        latency_ms = table_ms(table, blocks)
        score = float(sum(log_p[layer, c] for layer, c in enumerate(columns)))
        if low_ms <= latency_ms <= high_ms and score > best[0]:
            best = (score, blocks)
    return best


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("target_ms", [0.6, 0.8, 1.1])
def test_the_choice_is_the_most_probable_architecture_in_the_window(seed: int, target_ms: float) -> None:
    table = small_table()
    theta = torch.randn(4, 3, generator=torch.Generator().manual_seed(seed)) * 2.0
    choice = most_probable_within(table, theta, target_ms)
    score, blocks = brute_force(table, theta, (1 - WINDOW) * target_ms - 1e-9, target_ms + 1e-9)
    assert choice.in_window and (1 - WINDOW) * target_ms <= choice.predicted_ms <= target_ms
    assert choice.log_probability == pytest.approx(score)
    if choice.blocks != blocks:  # only a tie may pick another architecture
        assert choice.log_probability == pytest.approx(score, abs=1e-9)


def test_an_architecture_whose_rounded_cost_is_in_the_window_but_its_true_one_is_not_is_passed_over() -> None:
    # Target 1 ms: grid bins of 0.25 us. Four k3_e1 blocks of 237.4 us round up to 950 bins each, 0.95 ms on the
    # grid - inside the window - but truly 0.9496 ms, just under it. The choice is the most probable one truly in it.
    block_ms = torch.tensor([[0.2374, 0.24, 0.30]] * 4)
    table = LatencyTable(block_ms=block_ms, fixed_ms=0.0)
    theta = torch.tensor([[3.0, 0.0, -3.0]] * 4)
    choice = most_probable_within(table, theta, 1.0)
    score, blocks = brute_force(table, theta, (1 - WINDOW) * 1.0, 1.0)
    assert choice.in_window and choice.predicted_ms >= 0.95
    assert choice.log_probability == pytest.approx(score)
    assert sorted(choice.blocks) == sorted(blocks) == sorted([CANDIDATES[0]] * 3 + [CANDIDATES[1]])


def test_without_an_architecture_in_the_window_the_best_under_the_target_is_taken() -> None:
    table = small_table()
    # The fastest architecture takes 0.47 ms; the next one up 0.57 ms: nothing lies in [0.5225, 0.55].
    theta = torch.zeros(4, 3)
    choice = most_probable_within(table, theta, 0.55)
    assert not choice.in_window and choice.predicted_ms <= 0.55
    assert choice.predicted_ms == pytest.approx(table.min_ms())


def test_a_target_below_the_fastest_architecture_is_refused_naming_it() -> None:
    table = small_table()
    with pytest.raises(InvalidSearchConfigError) as error:
        check_target(table, 0.3)
    message = str(error.value)
    assert "\n" not in message
    assert "--target-ms 0.3 is below the fastest architecture of this LUT, 0.470 ms (k3_e1-k3_e1-k3_e1-k3_e1)" == message
    check_target(table, table.min_ms())  # the fastest itself is a valid budget
