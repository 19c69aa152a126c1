"""Gumbel-softmax sampling and the search schedule: temperature, warm-up, the 80/20 split."""

from __future__ import annotations

import math

import pytest
import torch

from search_client.search.gumbel import gumbel_softmax_weights, sample_gumbel_noise
from search_client.search.schedule import split_for_search, temperature, warmup_epochs


def test_gumbel_noise_differs_per_sample_and_is_reproducible() -> None:
    theta = torch.zeros(22, 9)
    noise = sample_gumbel_noise(16, theta, torch.Generator().manual_seed(1))
    assert noise.shape == (16, 22, 9)
    weights = gumbel_softmax_weights(theta, noise, temperature=5.0, hard=False)
    flat = weights.flatten(1)
    assert all(not torch.allclose(flat[i], flat[j]) for i in range(16) for j in range(i + 1, 16))
    assert torch.allclose(weights.sum(-1), torch.ones(16, 22))
    assert torch.equal(noise, sample_gumbel_noise(16, theta, torch.Generator().manual_seed(1)))


def test_gumbel_noise_has_the_gumbel_mean() -> None:
    noise = sample_gumbel_noise(4000, torch.zeros(5, 9), torch.Generator().manual_seed(0))
    euler_gamma = 0.5772156649
    assert noise.mean().item() == pytest.approx(euler_gamma, abs=0.02)


def test_hard_weights_are_one_hot_with_the_soft_gradient() -> None:
    theta = torch.randn(3, 9, generator=torch.Generator().manual_seed(2), requires_grad=True)
    noise = sample_gumbel_noise(5, theta, torch.Generator().manual_seed(3))
    hard = gumbel_softmax_weights(theta, noise, temperature=2.0, hard=True)
    soft = gumbel_softmax_weights(theta, noise, temperature=2.0, hard=False)
    assert torch.equal(hard.detach().sum(-1), torch.ones(5, 3))
    assert set(hard.detach().unique().tolist()) == {0.0, 1.0}
    assert torch.equal(hard.argmax(-1), soft.argmax(-1))
    probe = torch.randn(5, 3, 9, generator=torch.Generator().manual_seed(4))
    (hard_grad,) = torch.autograd.grad((hard * probe).sum(), theta)
    (soft_grad,) = torch.autograd.grad((soft * probe).sum(), theta)
    assert torch.allclose(hard_grad, soft_grad)


def test_temperature_follows_the_paper_schedule() -> None:
    assert temperature(0) == 5.0
    assert temperature(1) / temperature(0) == pytest.approx(0.956, abs=1e-3)
    assert temperature(90) == pytest.approx(5.0 * math.exp(-0.045 * 90))
    assert temperature(3, initial=2.0, decay_per_epoch=0.1) == pytest.approx(2.0 * math.exp(-0.3))


def test_warmup_is_a_tenth_of_the_epochs_and_leaves_epochs_for_theta() -> None:
    assert warmup_epochs(90) == 9
    assert warmup_epochs(10) == 1
    assert warmup_epochs(2) == 1
    assert warmup_epochs(1) == 0
    assert warmup_epochs(20, fraction=0.5) == 10


def test_search_split_is_80_20_disjoint_complete_and_seeded() -> None:
    split = split_for_search(1000, 0.8, seed=7)
    weights, thetas = set(split.weight_indices.tolist()), set(split.theta_indices.tolist())
    assert len(weights) == 800 and len(thetas) == 200
    assert not weights & thetas
    assert weights | thetas == set(range(1000))
    again = split_for_search(1000, 0.8, seed=7)
    assert torch.equal(split.theta_indices, again.theta_indices)
    assert not torch.equal(split.theta_indices, split_for_search(1000, 0.8, seed=8).theta_indices)
    with pytest.raises(ValueError, match="too few"):
        split_for_search(1, 0.8)


@pytest.mark.parametrize("epochs", [2, 6, 12, 90])
def test_the_default_temperature_reaches_the_papers_end_value_at_the_last_epoch(epochs: int) -> None:
    from search_client.search.loop import SearchConfig
    from search_client.search.schedule import PAPER_FINAL_TEMPERATURE

    schedule = SearchConfig(epochs=epochs).schedule(theta_batches_per_pass=9, fastest_ms=0.06)
    assert PAPER_FINAL_TEMPERATURE == pytest.approx(5.0 * math.exp(-0.045 * 90))
    assert temperature(epochs - 1, 5.0, schedule.temperature_decay) == pytest.approx(PAPER_FINAL_TEMPERATURE)
    assert schedule.final_temperature == pytest.approx(PAPER_FINAL_TEMPERATURE)
    assert temperature(0, 5.0, schedule.temperature_decay) == 5.0


def test_a_given_decay_and_the_papers_schedule_keep_their_own_trajectory() -> None:
    from search_client.search.loop import SearchConfig

    given = SearchConfig(epochs=12, temperature_decay=0.1).schedule(9, 0.06)
    assert given.temperature_decay == 0.1
    paper = SearchConfig(epochs=12, paper_schedule=True).schedule(9, 2.0)
    assert paper.temperature_decay == 0.045 and paper.final_temperature == pytest.approx(5.0 * math.exp(-0.045 * 11))
    assert (paper.theta_lr, paper.theta_passes, paper.theta_steps) == (0.01, 1, 11 * 9)
    assert paper.loss.label_smoothing == 0.0 and paper.loss.latency_unit_ms == 1.0


def test_theta_gets_several_passes_and_a_learning_rate_that_lets_it_travel_on_a_small_split() -> None:
    from search_client.search.loop import SearchConfig
    from search_client.search.schedule import MIN_THETA_STEPS_PER_EPOCH, THETA_TRAVEL, theta_passes_per_epoch

    # digits: 9 theta batches of 32 per pass, 11 theta epochs of 12
    small = SearchConfig(epochs=12, batch_size=32).schedule(theta_batches_per_pass=9, fastest_ms=0.06)
    assert small.theta_passes == 3 and small.theta_steps == 11 * 27 >= 11 * MIN_THETA_STEPS_PER_EPOCH
    assert small.theta_lr == pytest.approx(THETA_TRAVEL / (11 * 27))
    # ImageNet-100 at the paper's batch: 135 batches a pass, 81 theta epochs of 90 - the paper's settings stand.
    large = SearchConfig(epochs=90, batch_size=192).schedule(theta_batches_per_pass=135, fastest_ms=10.0)
    assert (large.theta_passes, large.theta_lr) == (1, 0.01)
    assert theta_passes_per_epoch(1) == MIN_THETA_STEPS_PER_EPOCH
    given = SearchConfig(epochs=12, theta_lr=0.05, theta_passes=2).schedule(9, 0.06)
    assert (given.theta_lr, given.theta_passes) == (0.05, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"paper_schedule": True, "theta_lr": 0.1}, "--paper-schedule sets --theta-lr"),
        ({"theta_passes": 0}, "--theta-passes must be >= 1"),
        ({"theta_lr": 0.0}, "--theta-lr must be > 0"),
    ],
)
def test_settings_that_cannot_work_together_are_refused(kwargs: dict, message: str) -> None:
    from search_client.errors import InvalidSearchConfigError
    from search_client.search.loop import SearchConfig

    with pytest.raises(InvalidSearchConfigError, match=message):
        SearchConfig(**kwargs)
