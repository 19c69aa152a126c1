"""Shared fixtures of the search-space tests."""

from __future__ import annotations

import pytest
import torch

from fbnet_core.space import IMAGENET_CLASSES, SearchSpace, fbnet_space


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    # The CI machine is small and shared; one thread keeps these tests from starving the others.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def space224() -> SearchSpace:
    return fbnet_space(num_classes=IMAGENET_CLASSES)  # the paper's ImageNet space
