"""The theta-pull diagnostic: its two parts add up to the loss's whole gradient, and each part answers to its term."""

from __future__ import annotations

import pytest
import torch

from fbnet_core.keys import ops_for_space
from fbnet_core.space import fbnet_space
from search_client.lut.latency import latency_table_for_space
from search_client.search.loss import LossConfig, cross_entropy, search_loss
from search_client.search.supernet import Supernet
from search_client.validation.theta_pull import measure_theta_pull, theta_gradient_parts

SPACE = fbnet_space(resolution=16, width=0.25, num_classes=10, head_channels=32, small_input=True)
TEMPERATURE = 2.0


def lut_us() -> dict[str, float]:
    return {op.key: 100.0 + 13.0 * index for index, op in enumerate(ops_for_space(SPACE))}


def batches(count: int, size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(size, 3, 16, 16, generator=generator),
            torch.randint(0, 10, (size,), generator=generator),
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize(
    "loss",
    [
        LossConfig(latency_unit_ms=0.01, label_smoothing=0.0),
        LossConfig(latency_unit_ms=0.01, label_smoothing=0.3),
        LossConfig("additive", lambda_per_ms=2.0, label_smoothing=0.0),
    ],
)
def test_the_two_parts_sum_to_the_whole_gradient(loss: LossConfig) -> None:
    table = latency_table_for_space(SPACE, lut_us())
    torch.manual_seed(0)
    supernet = Supernet(SPACE)
    images, labels = batches(1)[0]
    torch.manual_seed(5)  # the same Gumbel draw for the parts and for the whole
    ce_part, latency_part = theta_gradient_parts(supernet, table, loss, images, labels, TEMPERATURE)
    torch.manual_seed(5)
    logits, weights = supernet(images, TEMPERATURE)
    whole = search_loss(cross_entropy(logits, labels, loss), table.expected_ms(weights).mean(), loss)
    (expected,) = torch.autograd.grad(whole, supernet.theta)
    torch.testing.assert_close(ce_part + latency_part, expected)
    assert latency_part.abs().sum() > 0.0 and ce_part.abs().sum() > 0.0


def test_the_pulls_are_the_norms_of_the_batch_means_of_the_parts() -> None:
    table, loss = (
        latency_table_for_space(SPACE, lut_us()),
        LossConfig(latency_unit_ms=0.01, label_smoothing=0.0),
    )
    torch.manual_seed(0)
    supernet = Supernet(SPACE)
    data = batches(3)
    torch.manual_seed(7)
    pull = measure_theta_pull(supernet, table, loss, data, TEMPERATURE)
    torch.manual_seed(7)
    parts = [theta_gradient_parts(supernet, table, loss, x, y, TEMPERATURE) for x, y in data]
    ce_parts, latency_parts = torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])
    assert pull.batches == 3
    assert pull.cross_entropy_pull == pytest.approx(float(ce_parts.mean(0).norm()), rel=1e-6)
    assert pull.latency_pull == pytest.approx(float(latency_parts.mean(0).norm()), rel=1e-6)
    assert pull.cross_entropy_noise == pytest.approx(float(ce_parts.std(0).norm()), rel=1e-6)
    best = float((latency_parts.mean(0).abs() / ce_parts.std(0)).max())
    assert pull.batch_size == 8
    assert pull.latency_signal_to_noise == pytest.approx(best, rel=1e-6)
    # the steady pull outgrows noise averaged over n batches, std / sqrt(n), once n > (std / pull)^2
    assert pull.theta_samples_needed == pytest.approx(8 / best**2, rel=1e-6)
    assert f"~{pull.theta_samples_needed:,.0f} theta samples" in pull.describe()


def test_a_latency_unaware_loss_has_no_latency_pull() -> None:
    table = latency_table_for_space(SPACE, lut_us())
    torch.manual_seed(0)
    pull = measure_theta_pull(Supernet(SPACE), table, LossConfig("none"), batches(3), TEMPERATURE)
    assert pull.latency_pull == 0.0
    assert pull.cross_entropy_pull > 0.0 and pull.cross_entropy_noise > 0.0
    assert pull.latency_signal_to_noise == 0.0 and pull.theta_samples_needed == float("inf")


def test_a_stronger_additive_weight_pulls_proportionally_harder() -> None:
    table = latency_table_for_space(SPACE, lut_us())
    pulls = []
    for lambda_per_ms in (1.0, 4.0):
        torch.manual_seed(0)
        supernet = Supernet(SPACE)
        torch.manual_seed(3)
        pulls.append(
            measure_theta_pull(
                supernet, table, LossConfig("additive", lambda_per_ms=lambda_per_ms), batches(3), 2.0
            )
        )
    assert pulls[1].latency_pull == pytest.approx(4.0 * pulls[0].latency_pull, rel=1e-5)
    assert pulls[1].cross_entropy_pull == pytest.approx(pulls[0].cross_entropy_pull, rel=1e-5)


def test_one_batch_is_refused() -> None:
    table = latency_table_for_space(SPACE, lut_us())
    with pytest.raises(ValueError, match="at least two batches"):
        measure_theta_pull(Supernet(SPACE), table, LossConfig("none"), batches(1), TEMPERATURE)


def test_batches_of_different_sizes_are_refused() -> None:
    table = latency_table_for_space(SPACE, lut_us())
    with pytest.raises(ValueError, match=r"batches of one size, got \[4, 8\]"):
        measure_theta_pull(
            Supernet(SPACE), table, LossConfig("none"), batches(2) + batches(1, size=4), TEMPERATURE
        )
