"""Latency prediction from a LUT: a network's latency as the sum of its ops' entries.

The stem, head and pool + classifier are included; identity skips cost 0 (they are not ops). Summing is
exactly what the paper's latency term assumes; how well it holds on a device is measured, not assumed (see
docs/models.md and docs/validation.md). The search's latency tensor (search_client/lut/latency.py) holds the same
entries for its differentiable term; every latency reported for one architecture is this sum.
"""

from __future__ import annotations

from collections.abc import Mapping

from fbnet_core.arch import Architecture
from fbnet_core.errors import MissingLutEntries
from fbnet_core.keys import ops_for_architecture
from fbnet_core.space import SearchSpace


def latency_breakdown_us(
    lut: Mapping[str, float], arch: Architecture, space: SearchSpace
) -> list[tuple[str, float]]:
    """(key, latency in us) of each op the network runs, in order; every missing key is reported at once."""
    keys = [op.key for op in ops_for_architecture(arch, space)]
    missing = sorted({key for key in keys if key not in lut})
    if missing:
        raise MissingLutEntries(missing)
    return [(key, float(lut[key])) for key in keys]


def predict_latency_us(lut: Mapping[str, float], arch: Architecture, space: SearchSpace) -> float:
    return sum(latency_us for _, latency_us in latency_breakdown_us(lut, arch, space))
