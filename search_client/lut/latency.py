"""The LUT as a differentiable latency term: a (layers x candidates) tensor in ms plus the fixed ops.

The expected latency of a batch is one tensor contraction of the per-sample Gumbel weights with that tensor,
using the very weights of the forward pass (FBNet eq. 4), so no Python loop over candidates runs in a step.
Each entry is what the op costs inside a network (fbnet_core/lut_costs.py: its median less the invocation
overhead a network does not pay, when the LUT has it), and the fixed part includes the overhead the network pays
once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from fbnet_core.errors import MissingLutEntries
from fbnet_core.keys import candidate_ops, fixed_ops
from fbnet_core.lut_costs import LutCosts, as_lut_costs
from fbnet_core.space import SearchSpace
from fbnet_core.space_match import lut_space_mismatch

US_PER_MS = 1000.0


@dataclass(frozen=True)
class LatencyTable:
    """Per-layer, per-candidate latencies in ms (identity skips are 0) and the fixed stem/head/classifier time."""

    block_ms: torch.Tensor
    fixed_ms: float

    def expected_ms(self, weights: torch.Tensor) -> torch.Tensor:
        """Per-sample expected latency, shape (batch,), from weights of shape (batch, layers, candidates)."""
        table = self.block_ms.to(device=weights.device, dtype=weights.dtype)
        return torch.einsum("blk,lk->b", weights, table) + self.fixed_ms

    def min_ms(self) -> float:
        """The fastest architecture's latency: a lower bound of every expected latency (weights are convex)."""
        return float(self.block_ms.min(dim=1).values.sum()) + self.fixed_ms


def build_latency_table(
    lut: Mapping[str, float] | LutCosts,
    block_keys: Sequence[Sequence[str | None]],
    fixed_keys: Sequence[str],
) -> LatencyTable:
    """Assemble the table; `block_keys[l][k]` is None for an identity skip, which costs nothing. `fixed_keys`
    are the ops every network runs, first to last (stem, head, pool + classifier).

    Every missing key is reported at once, so one `dnas lut request` can fill them all.
    """
    costs = as_lut_costs(lut)
    costs.check_has([key for row in block_keys for key in row if key is not None] + list(fixed_keys))
    block_ms = torch.tensor(
        [[0.0 if key is None else costs.in_network_us(key) / US_PER_MS for key in row] for row in block_keys],
        dtype=torch.float32,
    )
    fixed_us = sum(costs.in_network_us(key) for key in fixed_keys)
    if fixed_keys:
        # Stem first, classifier last: every network of the space starts and ends with the same ops.
        fixed_us += costs.network_once_us(fixed_keys[0], fixed_keys[-1])
    return LatencyTable(block_ms=block_ms, fixed_ms=fixed_us / US_PER_MS)


def latency_table_for_space(space: SearchSpace, lut: Mapping[str, float] | LutCosts) -> LatencyTable:
    """The table of `space` (its layer x candidate op keys, see fbnet_core/keys.py) filled from a LUT."""
    block_keys = [[None if op is None else op.key for op in row] for row in candidate_ops(space)]
    fixed_keys = [op.key for op in fixed_ops(space)]
    try:
        return build_latency_table(lut, block_keys, fixed_keys)
    except MissingLutEntries as exc:
        # The keys alone do not say why; one differing space parameter usually does.
        mismatch = lut_space_mismatch(space.params, as_lut_costs(lut).median_us.keys())
        raise MissingLutEntries(exc.missing_keys, str(mismatch) if mismatch else None) from None
