"""The boundary share of a LUT, fitted from whole networks measured on the device.

An op timed alone pays the runtime's work at the edges of its graph (lut_costs.py): the fixed invocation cost,
which a network pays once, and layout conversions, of which a network pays only a part - how large a part depends
on the runtime, the device and the tensor sizes, so it is measured, not assumed. `dnas lut request` queues four
whole networks of the space with its ops (two drawn uniformly, one skewed toward cheap blocks, one toward expensive
ones; `fit_ops`), and the share of each op's boundary overhead (beyond the fixed cost) that a network does not pay
is the value that best predicts those four measured networks: with share s a network's prediction is A - s B (A
with only the fixed cost taken out, B the boundary work its ops count beyond a network's own edges), and s
minimises the squared relative errors (sum of ((A - s B - measured) / measured)^2, closed form), kept in [0, 1].
The networks are drawn with their own seed, apart from any `dnas validate` set, so a validation still judges the
prediction on networks the fit never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

from fbnet_core.arch import Architecture
from fbnet_core.arch_draw import random_architectures
from fbnet_core.keys import Op, make_op, network_spec, ops_for_architecture, ops_for_space
from fbnet_core.lut_costs import LutCosts
from fbnet_core.predict import network_latency_us
from fbnet_core.space import SearchSpace, SpaceParams

FIT_SEED = 7919  # the fit networks' own draw, apart from `dnas validate --seed`'s
FIT_UNIFORM = 2
FIT_SKEWED = 1  # toward cheap blocks, and as many toward expensive ones
FIT_NETWORKS = FIT_UNIFORM + 2 * FIT_SKEWED


def fit_architectures() -> list[Architecture]:
    """The architectures whose whole networks fit the boundary share (the same for every space)."""
    return [
        *random_architectures(FIT_UNIFORM, FIT_SEED),
        *random_architectures(FIT_SKEWED, FIT_SEED, "cheap"),
        *random_architectures(FIT_SKEWED, FIT_SEED, "expensive"),
    ]


def fit_ops(params: SpaceParams) -> list[Op]:
    """The whole-network ops `dnas lut request` queues with a space's ops."""
    return [make_op(network_spec(arch, params)) for arch in fit_architectures()]


@dataclass(frozen=True)
class FitNetworkTerms:
    """One measured network: its prediction with only the fixed cost taken out, the boundary work a share scales,
    and its measured median, in us."""

    fixed_only_us: float
    boundary_us: float
    measured_us: float

    def predicted_us(self, share: float) -> float:
        return self.fixed_only_us - share * self.boundary_us


def least_squares_share(networks: list[FitNetworkTerms]) -> float:
    """The share in [0, 1] minimising the squared relative errors of `networks`' predictions."""
    numerator = sum(
        (n.boundary_us / n.measured_us) * ((n.fixed_only_us - n.measured_us) / n.measured_us)
        for n in networks
    )
    denominator = sum((n.boundary_us / n.measured_us) ** 2 for n in networks)
    if denominator == 0.0:
        return 0.0  # no boundary work beyond the fixed cost: nothing to share
    return min(1.0, max(0.0, numerator / denominator))


def network_terms(costs: LutCosts, keys: list[str], measured_us: float) -> FitNetworkTerms:
    """The terms of a network running the ops `keys` in order, measured whole at `measured_us`."""
    fixed_only_us = network_latency_us(costs.with_boundary_share(0.0, "the fit's baseline"), keys)
    boundary_us = sum(costs.boundary_beyond_fixed_us(key) for key in keys)
    boundary_us -= costs.edges_beyond_fixed_us(keys[0], keys[-1])
    return FitNetworkTerms(fixed_only_us, boundary_us, measured_us)


def fit_boundary_share(costs: LutCosts, space: SearchSpace) -> LutCosts:
    """`costs` predicting with the boundary share fitted on the fit networks of `space` in the LUT; unchanged
    (share 0, its source saying why) where the LUT has no overhead figures or lacks one of those networks."""
    if not costs.overhead_once:
        return costs
    architectures = fit_architectures()
    keys = [op.key for op in fit_ops(space.params)]
    op_keys = [[op.key for op in ops_for_architecture(arch, space)] for arch in architectures]
    missing = [key for key in keys if key not in costs.median_us]
    if missing:
        return costs.with_boundary_share(
            0.0,
            f"not fitted: the LUT lacks {len(missing)} of the {len(keys)} whole networks that fit it "
            "(`dnas lut request` queues them with the space's ops); only the fixed cost is counted once",
        )
    lacking = sorted({key for keys_of_one in op_keys for key in keys_of_one if key not in costs.median_us})
    if lacking:
        return costs.with_boundary_share(
            0.0, f"not fitted: the LUT lacks {len(lacking)} ops the fit networks run (e.g. {lacking[0]})"
        )
    networks = [
        network_terms(costs, keys_of_one, costs.median_us[key])
        for keys_of_one, key in zip(op_keys, keys, strict=True)
    ]
    share = least_squares_share(networks)
    errors = [abs(n.predicted_us(share) / n.measured_us - 1.0) * 100.0 for n in networks]
    return costs.with_boundary_share(
        share,
        f"fitted on {len(networks)} whole networks measured on the device (their mean error then "
        f"{sum(errors) / len(errors):.1f} %)",
    )


def lut_ops(space: SearchSpace) -> list[Op]:
    """What a device's LUT needs for `space`: the space's ops, then the whole networks that fit its boundary
    share (`dnas lut request` and `dnas export-ops` take this list)."""
    return [*ops_for_space(space), *fit_ops(space.params)]
