"""A search space as the profiler server stores it (`PUT /spaces/{name}`), for coverage and heat maps.

Plain data from `fbnet_core.keys`: per layer, the op key of each candidate in `CANDIDATES` order (None where
the candidate is an identity skip: no op, no cost), the fixed ops' keys, and the space's parameters.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fbnet_core.blocks import CANDIDATES
from fbnet_core.keys import candidate_ops, fixed_ops
from fbnet_core.space import SearchSpace, SpaceParams


def space_name(params: SpaceParams) -> str:
    """A stable, URL-safe name from the parameters: `fbnet-r224-w1.0-c1000-h1984` (+ `-small` for small input)."""
    name = f"fbnet-r{params.resolution}-w{float(params.width)}-c{params.num_classes}-h{params.head_channels}"
    return name + ("-small" if params.small_input else "")


def space_manifest(space: SearchSpace) -> dict[str, Any]:
    """The body of `PUT /spaces/{name}`: {"layers", "candidates", "fixed_keys", "params"}."""
    return {
        "layers": [[op.key if op is not None else None for op in layer] for layer in candidate_ops(space)],
        "candidates": list(CANDIDATES),
        "fixed_keys": [op.key for op in fixed_ops(space)],
        "params": asdict(space.params),
    }
