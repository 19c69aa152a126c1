"""The whole supernet against its references, in float64 so that tight tolerances catch any wrong term rather than
float32's reordered sums: the fused weighted mode against the straightforward sum (`reference=True`) - logits,
theta's gradient, every weight's and BatchNorm parameter's gradient, the running statistics - and single path
against the plain network of the drawn blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fbnet_core.arch import Architecture
from fbnet_core.blocks import CANDIDATES
from fbnet_core.space import fbnet_space
from search_client.search.gumbel import sample_gumbel_noise
from search_client.search.supernet import Supernet
from search_client.space.model import build_model

SPACE = fbnet_space(resolution=16, width=0.25, num_classes=10, head_channels=32, small_input=True)
BATCH = 6
TOLERANCE = {"rtol": 1e-10, "atol": 1e-10}


def _images_and_labels() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(BATCH, 3, 16, 16, generator=generator, dtype=torch.float64)
    return images, torch.randint(0, 10, (BATCH,), generator=generator)


def _randomise(module: nn.Module, generator: torch.Generator) -> None:
    """Non-uniform theta and BatchNorm affine parameters, so that every term of the gradients is non-trivial."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name == "theta" or name.endswith(("1.weight", "1.bias")):
                param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype))


def _step(supernet: Supernet, noise: torch.Tensor) -> torch.Tensor:
    images, labels = _images_and_labels()
    logits, _ = supernet(images, temperature=2.0, noise=noise)
    F.cross_entropy(logits, labels).backward()
    return logits.detach()


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fused_weighted_supernet_equals_the_straightforward_sum(training: bool) -> None:
    torch.manual_seed(0)
    fused = Supernet(SPACE, "weighted").double().train(training)
    _randomise(fused, torch.Generator().manual_seed(1))
    reference = Supernet(SPACE, "weighted", reference=True).double().train(training)
    reference.load_state_dict(fused.state_dict())
    noise = sample_gumbel_noise(BATCH, fused.theta.detach(), torch.Generator().manual_seed(2))
    torch.testing.assert_close(_step(fused, noise), _step(reference, noise), **TOLERANCE)
    for (name, fused_param), reference_param in zip(
        fused.named_parameters(), reference.parameters(), strict=True
    ):
        assert fused_param.grad is not None and reference_param.grad is not None, name
        torch.testing.assert_close(fused_param.grad, reference_param.grad, **TOLERANCE, msg=name)
    for (name, fused_buffer), reference_buffer in zip(
        fused.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(fused_buffer, reference_buffer, **TOLERANCE, msg=name)


def test_theta_gradient_equals_the_straightforward_sum() -> None:
    """Theta's gradient on its own, for a loss that weighs every layer's weights: the per-sample weight folded
    into each BatchNorm's scale must return exactly the gradient the straightforward sum gives theta."""
    torch.manual_seed(0)
    fused = Supernet(SPACE, "weighted").double()
    _randomise(fused, torch.Generator().manual_seed(3))
    reference = Supernet(SPACE, "weighted", reference=True).double()
    reference.load_state_dict(fused.state_dict())
    noise = sample_gumbel_noise(BATCH, fused.theta.detach(), torch.Generator().manual_seed(4))
    images, labels = _images_and_labels()
    gradients = []
    for supernet in (fused, reference):
        logits, _ = supernet(images, temperature=1.0, noise=noise)
        (gradient,) = torch.autograd.grad(F.cross_entropy(logits, labels), [supernet.theta])
        gradients.append(gradient)
    assert gradients[0].abs().min() > 0  # every layer's and candidate's theta receives a gradient
    torch.testing.assert_close(gradients[0], gradients[1], **TOLERANCE)


def test_single_path_equals_the_plain_network_of_the_drawn_blocks() -> None:
    torch.manual_seed(0)
    supernet = Supernet(SPACE, "single_path").double()
    _randomise(supernet, torch.Generator().manual_seed(5))
    noise = sample_gumbel_noise(BATCH, supernet.theta.detach(), torch.Generator().manual_seed(6))
    images, labels = _images_and_labels()
    logits, weights = supernet(images, temperature=1.0, noise=noise)
    F.cross_entropy(logits, labels).backward()
    drawn = weights[0].argmax(-1).tolist()
    assert len(set(drawn)) > 3  # a mixed path, not one candidate everywhere
    plain = build_model(Architecture(tuple(CANDIDATES[index] for index in drawn)), SPACE).double()
    supernet_state = supernet.state_dict()
    plain_keys = {}
    for key in plain.state_dict():
        if key.startswith("layers."):
            _, layer, rest = key.split(".", 2)
            plain_keys[key] = f"layers.{layer}.{drawn[int(layer)]}.{rest}"
        else:
            plain_keys[key] = key
    plain.load_state_dict({key: supernet_state[source] for key, source in plain_keys.items()})
    plain_logits = plain(images)
    F.cross_entropy(plain_logits, labels).backward()
    torch.testing.assert_close(logits.detach(), plain_logits.detach(), **TOLERANCE)
    supernet_params = dict(supernet.named_parameters())
    for name, param in plain.named_parameters():
        source = supernet_params[plain_keys[name]]
        assert param.grad is not None and source.grad is not None, name
        torch.testing.assert_close(source.grad, param.grad, **TOLERANCE, msg=name)


def test_single_path_theta_gradient_equals_the_straight_through_product() -> None:
    """Theta's gradient in single path against the straight-through estimator written out: each layer's drawn
    block times its (hard, straight-through) weight column, through the same weights the supernet used."""
    torch.manual_seed(0)
    supernet = Supernet(SPACE, "single_path", path_groups=1).double()
    _randomise(supernet, torch.Generator().manual_seed(7))
    noise = sample_gumbel_noise(BATCH, supernet.theta.detach(), torch.Generator().manual_seed(8))
    images, labels = _images_and_labels()
    logits, weights = supernet(images, temperature=1.0, noise=noise)
    (gradient,) = torch.autograd.grad(F.cross_entropy(logits, labels), [supernet.theta], retain_graph=True)
    drawn = weights[0].argmax(-1).tolist()
    x = supernet.stem(images)
    for layer_index, (layer, index) in enumerate(zip(supernet.layers, drawn, strict=True)):
        x = layer[index](x) * weights[:, layer_index, index].view(-1, 1, 1, 1)
    reference_logits = supernet.classifier(supernet.head(x))
    (reference,) = torch.autograd.grad(F.cross_entropy(reference_logits, labels), [supernet.theta])
    assert reference.abs().max() > 0
    torch.testing.assert_close(logits, reference_logits, **TOLERANCE)
    torch.testing.assert_close(gradient, reference, **TOLERANCE)
