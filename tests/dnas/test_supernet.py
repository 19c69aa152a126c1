"""The supernet: shapes, single-path == weighted for one-hot weights, sample groups, gradients, sampling."""

from __future__ import annotations

import pytest
import torch

from fbnet_core.blocks import CANDIDATES
from fbnet_core.space import fbnet_space
from search_client.search.gumbel import path_group_count, sample_gumbel_noise, share_within_groups
from search_client.search.supernet import Supernet

SPACE = fbnet_space(resolution=16, width=0.25, num_classes=10, head_channels=32, small_input=True)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("mode", ["weighted", "single_path"])
def test_forward_returns_logits_and_the_weights_it_used(mode: str, images: torch.Tensor) -> None:
    torch.manual_seed(0)
    supernet = Supernet(SPACE, mode)
    logits, weights = supernet(images, temperature=5.0)
    assert logits.shape == (6, 10) and weights.shape == (6, 22, len(CANDIDATES))
    assert torch.isfinite(logits).all()
    assert torch.allclose(weights.sum(-1), torch.ones(6, 22))
    if mode == "single_path":
        assert set(weights.detach().unique().tolist()) == {0.0, 1.0}


def test_single_path_equals_the_weighted_sum_when_weights_are_one_hot(images: torch.Tensor) -> None:
    """At a vanishing temperature the soft weights are exactly one-hot: both modes must then agree."""
    torch.manual_seed(0)
    # eval: BN must not depend on how the batch is grouped; noise shared within single path's 3 groups.
    supernet = Supernet(SPACE, "weighted", path_groups=3).eval()
    noise = sample_gumbel_noise(6, supernet.theta.detach(), torch.Generator().manual_seed(1))
    noise = share_within_groups(noise, 3)
    weighted_logits, soft = supernet(images, temperature=1e-6, noise=noise, mode="weighted")
    path_logits, hard = supernet(images, temperature=1e-6, noise=noise, mode="single_path")
    assert torch.equal(soft.detach(), hard.detach())
    assert len(hard.argmax(-1).unique()) > 1  # the samples really took different paths
    assert torch.allclose(weighted_logits, path_logits, atol=1e-5)


def test_single_path_trains_theta_and_only_the_drawn_candidates(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    supernet = Supernet(SPACE, "single_path")
    noise = sample_gumbel_noise(6, supernet.theta.detach(), torch.Generator().manual_seed(2))
    logits, weights = supernet(images, temperature=1.0, noise=noise)
    logits.logsumexp(1).sum().backward()
    assert supernet.theta.grad is not None and supernet.theta.grad.abs().sum() > 0
    drawn = set(weights.argmax(-1)[:, 0].tolist())
    for index, candidate in enumerate(supernet.layers[0]):
        has_grad = any(p.grad is not None and p.grad.abs().sum() > 0 for p in candidate.parameters())
        if list(candidate.parameters()):
            assert has_grad == (index in drawn), CANDIDATES[index]


def test_weighted_mode_trains_every_candidate(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    supernet = Supernet(SPACE, "weighted")
    logits, _ = supernet(images, temperature=5.0)
    logits.logsumexp(1).sum().backward()
    for candidate in supernet.layers[3]:
        assert all(p.grad is not None for p in candidate.parameters())
    assert supernet.theta.grad.abs().sum() > 0
    assert {id(p) for p in supernet.weight_parameters()}.isdisjoint({id(supernet.theta)})


def test_argmax_and_samples_follow_theta() -> None:
    supernet = Supernet(SPACE)
    with torch.no_grad():
        supernet.theta[:, CANDIDATES.index("k5_e6")] = 50.0
        supernet.theta[4, CANDIDATES.index("skip")] = 60.0
    expected = ["k5_e6"] * 22
    expected[4] = "skip"
    assert supernet.argmax_blocks() == expected
    samples = supernet.sample_blocks(5, torch.Generator().manual_seed(0))
    assert samples == [expected] * 5
    assert supernet.probabilities().shape == (22, len(CANDIDATES))


def test_uniform_theta_samples_vary() -> None:
    samples = Supernet(SPACE).sample_blocks(4, torch.Generator().manual_seed(0))
    assert len({tuple(sample) for sample in samples}) == 4
    assert Supernet(SPACE).sample_blocks(0, torch.Generator()) == []


@pytest.mark.parametrize("path_groups", [1, 4])
def test_single_path_runs_one_candidate_per_group_even_on_a_1x1_map(path_groups: int) -> None:
    """ImageNet strides at 32x32 end on 1x1 maps: a group of one sample there cannot be batch-normed."""
    torch.manual_seed(0)
    space = fbnet_space(resolution=32, width=0.25, num_classes=10, head_channels=32, small_input=False)
    assert space.layers[-1].output_hw == (1, 1)
    supernet = Supernet(space, "single_path", path_groups)
    noise = sample_gumbel_noise(9, supernet.theta.detach(), torch.Generator().manual_seed(3))
    logits, weights = supernet(torch.randn(9, 3, 32, 32), temperature=1.0, noise=noise)
    logits.logsumexp(1).sum().backward()
    groups = path_group_count(9, path_groups)
    assert groups == path_groups
    for group in range(groups):  # sample i is in group i mod groups; a group shares its draw
        members = weights[group::groups].detach()
        assert torch.equal(members, members[:1].expand_as(members))
    drawn = weights.argmax(-1)  # (batch, layers)
    assert all(len(drawn[:, layer].unique()) <= groups for layer in range(22))
    assert path_groups == 1 or any(len(drawn[:, layer].unique()) > 1 for layer in range(22))


def test_path_groups_are_clamped_to_two_samples_each() -> None:
    assert [path_group_count(batch, 4) for batch in (1, 2, 5, 8, 32)] == [1, 1, 2, 4, 4]
    with pytest.raises(ValueError, match="path_groups"):
        Supernet(SPACE, "single_path", path_groups=0)
