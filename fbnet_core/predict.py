"""Latency prediction from a LUT: a network's latency from its ops' entries.

The stem, head and pool + classifier are included; identity skips cost 0 (they are not ops). With the entries'
invocation overheads (lut_costs.py) each op counts its median less the overhead a network does not pay and the
network pays its own once; without them the prediction is the plain sum the paper's latency term assumes. How
well either holds on a device is measured, not assumed (docs/models.md and docs/validation.md). The search's latency tensor
(search_client/lut/latency.py) holds the same entries for its differentiable term; every latency reported for one
architecture is this prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fbnet_core.arch import Architecture
from fbnet_core.keys import ops_for_architecture
from fbnet_core.lut_costs import LutCosts, as_lut_costs
from fbnet_core.space import SearchSpace


def latency_breakdown_us(
    lut: Mapping[str, float] | LutCosts, arch: Architecture, space: SearchSpace
) -> list[tuple[str, float]]:
    """(key, latency in us inside the network) of each op it runs, in order; every missing key reported at once."""
    costs = as_lut_costs(lut)
    keys = [op.key for op in ops_for_architecture(arch, space)]
    costs.check_has(keys)
    return [(key, costs.in_network_us(key)) for key in keys]


def network_latency_us(costs: LutCosts, keys: Sequence[str]) -> float:
    """A network running the ops `keys` in order: what each adds inside it, plus what it pays once."""
    costs.check_has(keys)
    return sum(costs.in_network_us(key) for key in keys) + costs.network_once_us(keys[0], keys[-1])


def predict_latency_us(lut: Mapping[str, float] | LutCosts, arch: Architecture, space: SearchSpace) -> float:
    return network_latency_us(as_lut_costs(lut), [op.key for op in ops_for_architecture(arch, space)])
