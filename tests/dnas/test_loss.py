"""The search loss: the paper's multiplicative form, its unit from the LUT (or its refusal below one unit), alpha 0
as cross-entropy alone, the budget's form, and gradients reaching theta."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from search_client.errors import InvalidSearchConfigError, LatencyLossUndefinedError
from search_client.lut.latency import build_latency_table
from search_client.search.gumbel import gumbel_softmax_weights, sample_gumbel_noise
from search_client.search.loss import (
    DEFAULT_LABEL_SMOOTHING,
    FASTEST_ARCHITECTURE_UNITS,
    LossConfig,
    cross_entropy,
    search_loss,
)

MS = LossConfig(latency_unit_ms=1.0, label_smoothing=0.0)  # the paper's own settings, resolved


def test_multiplicative_value_is_ce_times_alpha_times_log_latency_to_the_beta() -> None:
    ce, latency_ms = torch.tensor(1.7), torch.tensor(20.0)
    loss = search_loss(ce, latency_ms, LossConfig(alpha=0.2, beta=0.6, latency_unit_ms=1.0))
    assert loss.item() == pytest.approx(1.7 * 0.2 * math.log(20.0) ** 0.6)
    # The common mistake, log(LAT^beta), is a different number: make sure it is not what we compute.
    assert loss.item() != pytest.approx(1.7 * 0.2 * math.log(20.0**0.6))


def test_additive_and_latency_unaware_forms() -> None:
    ce, latency_ms = torch.tensor(1.5), torch.tensor(0.4)
    assert search_loss(
        ce, latency_ms, LossConfig(form="additive", lambda_per_ms=0.5)
    ).item() == pytest.approx(1.7)
    assert search_loss(ce, latency_ms, LossConfig(form="none")).item() == pytest.approx(1.5)


def test_a_unit_given_refuses_a_lut_whose_fastest_network_is_under_one_unit() -> None:
    with pytest.raises(LatencyLossUndefinedError, match="--latency-loss additive"):
        LossConfig(latency_unit_ms=1.0).resolved(fastest_ms=0.8)
    with pytest.raises(LatencyLossUndefinedError, match="1 ms"):
        LossConfig().resolved(fastest_ms=0.8, paper=True)  # the paper counts LAT in ms
    LossConfig(latency_unit_ms=1.0).resolved(fastest_ms=1.2)
    LossConfig(form="additive", latency_unit_ms=1.0).resolved(fastest_ms=0.8)
    LossConfig(alpha=0.0, latency_unit_ms=1.0).resolved(fastest_ms=0.8)  # CE alone has no log(LAT)
    LossConfig(latency_unit_ms=0.01).resolved(fastest_ms=0.8)
    with pytest.raises(LatencyLossUndefinedError, match="0.01 ms"):
        LossConfig(latency_unit_ms=0.01).resolved(fastest_ms=0.008)


def test_latency_unit_rescales_lat_inside_the_log() -> None:
    ce, latency_ms = torch.tensor(2.0), torch.tensor(0.5)
    loss = search_loss(ce, latency_ms, LossConfig(latency_unit_ms=0.01))
    assert loss.item() == pytest.approx(2.0 * 0.2 * math.log(50.0) ** 0.6)


@pytest.mark.parametrize("fastest_ms", [0.01, 0.06, 1.0, 20.0, 100.0])
def test_the_unit_from_the_lut_keeps_the_loss_finite_and_its_pull_the_same_from_10_us_to_100_ms(
    fastest_ms: float,
) -> None:
    """LUTs whose fastest architecture takes 10 us to 100 ms: the default unit puts that architecture at e^2 units,
    so the loss is finite and positive for every architecture, and the latency pull on theta - d loss / d LAT
    relative to the loss, times LAT - is the same function of LAT / fastest on every device."""
    config = LossConfig().resolved(fastest_ms)
    assert config.latency_unit_ms == pytest.approx(fastest_ms / FASTEST_ARCHITECTURE_UNITS)
    assert config.label_smoothing == DEFAULT_LABEL_SMOOTHING
    pulls = []
    for ratio in (1.0, 1.5, 3.0, 10.0):  # the fastest architecture and slower ones
        latency_ms = torch.tensor(fastest_ms * ratio, dtype=torch.float64, requires_grad=True)
        loss = search_loss(torch.tensor(1.3, dtype=torch.float64), latency_ms, config)
        (gradient,) = torch.autograd.grad(loss, latency_ms)
        assert math.isfinite(loss.item()) and loss.item() > 0 and math.isfinite(gradient.item())
        pulls.append(gradient.item() * latency_ms.item() / loss.item())  # beta / log(LAT in units)
    assert pulls == pytest.approx(
        [0.6 / math.log(FASTEST_ARCHITECTURE_UNITS * r) for r in (1.0, 1.5, 3.0, 10.0)]
    )


def test_alpha_zero_trains_on_cross_entropy_alone() -> None:
    """The paper's latency-unaware baseline: alpha = 0 is CE alone (the product itself would be zero)."""
    ce = torch.tensor(0.9, requires_grad=True)
    latency_ms = torch.tensor(0.3, requires_grad=True)
    config = LossConfig(alpha=0.0).resolved(fastest_ms=0.1)
    assert not config.latency_aware
    loss = search_loss(ce, latency_ms, config)
    assert loss.item() == pytest.approx(0.9)
    ce_grad, latency_grad = torch.autograd.grad(loss, [ce, latency_ms], allow_unused=True)
    assert ce_grad.item() == pytest.approx(1.0) and latency_grad is None


def test_a_negative_alpha_is_refused() -> None:
    with pytest.raises(InvalidSearchConfigError, match="--alpha"):
        LossConfig(alpha=-0.1)


def test_the_budget_pulls_the_expected_latency_to_the_target_from_both_sides() -> None:
    config = LossConfig(target_ms=0.2, target_weight=2.0).resolved(fastest_ms=0.1)
    ce = torch.tensor(1.0)
    for latency, sign in ((0.3, 1.0), (0.1, -1.0)):
        latency_ms = torch.tensor(latency, requires_grad=True)
        loss = search_loss(ce, latency_ms, config)
        assert loss.item() == pytest.approx(1.0 + 2.0 * abs(latency / 0.2 - 1.0))
        (gradient,) = torch.autograd.grad(loss, latency_ms)
        assert gradient.item() == pytest.approx(sign * 2.0 / 0.2)  # over budget: down; under it: up


@pytest.mark.parametrize(
    "kwargs", [{"target_ms": 0.0}, {"target_ms": 1.0, "form": "additive"}, {"target_ms": 1.0, "alpha": 0.0}]
)
def test_a_target_that_cannot_work_is_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidSearchConfigError, match="--target-ms"):
        LossConfig(**kwargs)


def test_gradients_reach_theta_from_both_cross_entropy_and_latency_factor() -> None:
    table = build_latency_table({"a": 3000.0, "b": 9000.0}, [["a", "b"], ["b", "a"]], [])
    generator = torch.Generator().manual_seed(0)
    theta = torch.zeros(2, 2, requires_grad=True)
    noise = sample_gumbel_noise(8, theta, generator)
    weights = gumbel_softmax_weights(theta, noise, temperature=1.0, hard=False)
    # Logits that depend on the weights, as the supernet's do.
    logits = torch.stack([weights[:, 0, 0] - weights[:, 1, 1], weights[:, 1, 0]], dim=1) * 3.0
    labels = torch.tensor([0, 1] * 4)
    ce = F.cross_entropy(logits, labels)
    latency_ms = table.expected_ms(weights).mean()

    (ce_grad,) = torch.autograd.grad(ce, theta, retain_graph=True)
    (latency_grad,) = torch.autograd.grad(latency_ms, theta, retain_graph=True)
    (total_grad,) = torch.autograd.grad(search_loss(ce, latency_ms, MS), theta)
    assert ce_grad.abs().sum() > 0 and latency_grad.abs().sum() > 0
    # Product rule: d(CE * a * log(L)^b) = a log(L)^b dCE + CE * a * b log(L)^(b-1) / L dL.
    log_latency = math.log(latency_ms.item())
    expected = (
        0.2 * log_latency**0.6 * ce_grad
        + ce.item() * 0.2 * 0.6 * log_latency ** (-0.4) / latency_ms.item() * latency_grad
    )
    assert torch.allclose(total_grad, expected, rtol=1e-4, atol=1e-7)
    # Lower latency is rewarded: the latency gradient pushes probability away from the slow candidates.
    assert latency_grad[0, 1] > latency_grad[0, 0] and latency_grad[1, 0] > latency_grad[1, 1]


def smoothed_floor(epsilon: float, classes: int) -> float:
    """The entropy of the smoothed target: the least cross-entropy any prediction can reach."""
    target, other = 1.0 - epsilon + epsilon / classes, epsilon / classes
    return -(target * math.log(target) + (classes - 1) * other * math.log(other))


def test_label_smoothing_keeps_the_cross_entropy_of_a_confident_right_answer_off_zero() -> None:
    labels = torch.arange(10)
    confident = torch.eye(10) * 30.0  # every sample right, with probability ~1
    assert cross_entropy(confident, labels, MS).item() < 1e-6
    for epsilon, floor in [(0.1, 0.50), (0.2, 0.87), (0.3, 1.18)]:
        config = LossConfig(label_smoothing=epsilon)
        assert smoothed_floor(epsilon, 10) == pytest.approx(floor, abs=0.005)  # the figures in loss.py's doc
        # The smoothed CE is the CE against the smoothed target; it is lowest at that target, not at one-hot.
        at_target = torch.log(torch.full((10, 10), epsilon / 10) + torch.eye(10) * (1 - epsilon))
        assert cross_entropy(at_target, labels, config).item() == pytest.approx(smoothed_floor(epsilon, 10))
        assert cross_entropy(confident, labels, config).item() > floor
    sums = cross_entropy(confident, labels, LossConfig(label_smoothing=0.2), reduction="sum")
    assert sums.item() == pytest.approx(
        10 * cross_entropy(confident, labels, LossConfig(label_smoothing=0.2)).item()
    )


@pytest.mark.parametrize("epsilon", [-0.1, 1.0, 1.5])
def test_label_smoothing_outside_zero_to_one_is_refused(epsilon: float) -> None:
    with pytest.raises(InvalidSearchConfigError, match="--label-smoothing must be in"):
        LossConfig(label_smoothing=epsilon)
