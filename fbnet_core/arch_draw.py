"""Seeded draws of architectures of the FBNet space: uniform over the 9 candidates per layer, or skewed toward
cheap blocks (skips, expansion 1) or toward expensive ones (expansion 6) - the regions a latency-aware search ends
in. Whole networks drawn here are measured to check a LUT (`dnas validate`) and to fit what a network pays beyond its
ops (network_fit.py)."""

from __future__ import annotations

import random
from collections.abc import Mapping

from fbnet_core.arch import Architecture
from fbnet_core.blocks import BLOCKS, CANDIDATES
from fbnet_core.errors import InvalidArchitectureError
from fbnet_core.space import NUM_LAYERS

# Relative draw weights per block expansion (skip counted apart) of the skewed networks.
SKEW_WEIGHTS: dict[str, dict[str, float]] = {
    "cheap": {"skip": 6.0, "e1": 3.0, "e3": 1.0, "e6": 0.5},
    "expensive": {"skip": 0.25, "e1": 0.5, "e3": 2.0, "e6": 4.0},
}


def _block_weight(name: str, skew: Mapping[str, float]) -> float:
    if name == "skip":
        return skew["skip"]
    return skew[f"e{BLOCKS[name].expansion or 1}"]


def random_architectures(count: int, seed: int, skew: str | None = None) -> list[Architecture]:
    """`count` architectures, each layer's block drawn from the 9 candidates - uniformly, or with the weights of
    `SKEW_WEIGHTS[skew]`; distinct, seeded."""
    if count < 0:
        raise InvalidArchitectureError(f"the number of random architectures must be >= 0, got {count}")
    generator = random.Random(seed if skew is None else f"{seed}-{skew}")
    weights = None if skew is None else [_block_weight(name, SKEW_WEIGHTS[skew]) for name in CANDIDATES]
    drawn: dict[Architecture, None] = {}
    # 9^22 architectures: a repeat is practically impossible, but one is never counted twice.
    while len(drawn) < count:
        blocks = (
            generator.choices(CANDIDATES, weights, k=NUM_LAYERS)
            if weights
            else [generator.choice(CANDIDATES) for _ in range(NUM_LAYERS)]
        )
        drawn[Architecture(tuple(blocks))] = None
    return list(drawn)
