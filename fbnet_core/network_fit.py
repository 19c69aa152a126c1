"""The boundary share and the network offset of a LUT, fitted from whole networks measured on the device.

An op timed alone pays the runtime's work at the edges of its graph (lut_costs.py): the fixed invocation cost,
which a network pays once, and layout conversions, of which a network pays only a part; and a network pays an
offset that hardly depends on its blocks. How large each is depends on the runtime, the device and the tensor
sizes, so it is measured, not assumed. `dnas lut request` queues five whole networks of the space with its ops (two
drawn uniformly, one skewed toward cheap blocks, one toward expensive ones, and the one with a skip in every layer,
the smallest a search can reach; `fit_ops`): with share s and offset d a network's prediction is A - s B + d (A
with only the fixed cost taken out, B the boundary work its ops count beyond a network's own edges), and (s, d)
minimise the squared relative errors (sum of ((A - s B + d - measured) / measured)^2, linear least squares) with
s kept in [0, 1] and d above minus half the prediction of the space's fastest architecture, so that none is
predicted at 0 or below. The smallest network is what pins the offset down: the four others differ in size by a
factor of about two, and on them a share and an offset trade off against each other. The networks are drawn with
their own seed, apart from any `dnas validate` set, so a validation still judges the prediction on networks the
fit never saw.

Where the agent measured no overhead (lut_costs.py), the same networks fit one invocation cost c for every op
instead: a network is predicted as sum over its ops of max(0, median - c) + c, and c minimises the same squared
relative errors. Between two consecutive op medians the prediction is linear in c, so the minimum is the best of
each interval's closed-form minimum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from fbnet_core.arch import Architecture
from fbnet_core.arch_draw import random_architectures
from fbnet_core.keys import (
    Op,
    candidate_ops,
    fixed_ops,
    make_op,
    network_spec,
    ops_for_architecture,
    ops_for_space,
)
from fbnet_core.lut_costs import FIXED_MEASURED, LutCosts
from fbnet_core.predict import network_latency_us
from fbnet_core.space import NUM_LAYERS, SearchSpace, SpaceParams

FIT_SEED = 7919  # the fit networks' own draw, apart from `dnas validate --seed`'s
FIT_UNIFORM = 2
FIT_SKEWED = 1  # toward cheap blocks, and as many toward expensive ones
FIT_NETWORKS = FIT_UNIFORM + 2 * FIT_SKEWED + 1  # and the smallest: a skip in every layer


def fit_architectures() -> list[Architecture]:
    """The architectures whose whole networks fit the boundary share and the network offset (the same for every
    space)."""
    return [
        *random_architectures(FIT_UNIFORM, FIT_SEED),
        *random_architectures(FIT_SKEWED, FIT_SEED, "cheap"),
        *random_architectures(FIT_SKEWED, FIT_SEED, "expensive"),
        Architecture(("skip",) * NUM_LAYERS),
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


@dataclass(frozen=True)
class NetworkFit:
    """A fitted boundary share (0 - 1) and network offset (us)."""

    share: float
    offset_us: float


def least_squares_fit(networks: Sequence[FitNetworkTerms], lowest_offset_us: float) -> NetworkFit:
    """The share in [0, 1] and the offset of at least `lowest_offset_us` minimising the squared relative errors of
    `networks`' predictions A - s B + d."""

    def best_offset_us(share: float) -> float:
        # d/dd of sum(((A - sB + d - M) / M)^2) = 0: d = sum((M - A + sB) / M^2) / sum(1 / M^2)
        numerator = sum((n.measured_us - n.fixed_only_us + share * n.boundary_us) / n.measured_us**2 for n in networks)
        return max(lowest_offset_us, numerator / sum(1.0 / n.measured_us**2 for n in networks))

    def best_share(offset_us: float) -> float:
        # d/ds = 0: s = sum(b (a + d/M - 1)) / sum(b^2) with a = A / M, b = B / M
        numerator = sum(
            (n.boundary_us / n.measured_us) * ((n.fixed_only_us + offset_us - n.measured_us) / n.measured_us)
            for n in networks
        )
        denominator = sum((n.boundary_us / n.measured_us) ** 2 for n in networks)
        return 0.0 if denominator == 0.0 else min(1.0, max(0.0, numerator / denominator))

    # Both unknowns enter linearly: solve the 2 x 2 normal equations; where the optimum lies outside the bounds,
    # the constrained one lies on a bound (the loss is a convex quadratic), found by fixing one and solving the other.
    rows = [(n.boundary_us / n.measured_us, 1.0 / n.measured_us, (n.fixed_only_us - n.measured_us) / n.measured_us)
            for n in networks]  # fmt: skip
    # residual = a_i - s b_i + d c_i with a_i = (A - M) / M
    sbb = sum(b * b for b, _, _ in rows)
    scc = sum(c * c for _, c, _ in rows)
    sbc = sum(b * c for b, c, _ in rows)
    sab = sum(a * b for b, _, a in rows)
    sac = sum(a * c for _, c, a in rows)
    determinant = sbb * scc - sbc * sbc
    if determinant > 1e-12 * max(sbb * scc, 1e-300):
        share = (sab * scc - sac * sbc) / determinant
        offset_us = (sab * sbc - sac * sbb) / determinant
        if 0.0 <= share <= 1.0 and offset_us >= lowest_offset_us:
            return NetworkFit(share, offset_us)
    candidates = [NetworkFit(share, best_offset_us(share)) for share in (0.0, 1.0)]
    candidates.append(NetworkFit(best_share(lowest_offset_us), lowest_offset_us))

    def loss(fit: NetworkFit) -> float:
        return sum((a - fit.share * b + fit.offset_us * c) ** 2 for b, c, a in rows)

    return min(candidates, key=loss)


def least_squares_invocation_us(networks: Sequence[tuple[Sequence[float], float]]) -> float:
    """The invocation cost c >= 0 minimising sum(((sum_i max(0, m_i - c) + c - M) / M)^2) over `networks`, each
    given as (its ops' medians m_i, its measured median M), in us."""
    breakpoints = sorted({0.0, *(median for medians, _ in networks for median in medians)})
    best_us, best_loss = 0.0, math.inf
    for low, high in zip(breakpoints, breakpoints[1:], strict=False):
        # On [low, high] a network predicts a - b c: a sums the medians of at least `high`, b counts them less 1.
        terms = []
        for medians, measured_us in networks:
            above = [median for median in medians if median >= high]
            terms.append((sum(above), len(above) - 1.0, measured_us))
        denominator = sum((b / measured) ** 2 for _, b, measured in terms)
        numerator = sum((b / measured) * ((a - measured) / measured) for a, b, measured in terms)
        candidate = low if denominator == 0.0 else min(high, max(low, numerator / denominator))
        loss = sum(((a - b * candidate - measured) / measured) ** 2 for a, b, measured in terms)
        if loss < best_loss:
            best_us, best_loss = candidate, loss
    return best_us


def network_terms(costs: LutCosts, keys: list[str], measured_us: float) -> FitNetworkTerms:
    """The terms of a network running the ops `keys` in order, measured whole at `measured_us`."""
    fixed_only_us = network_latency_us(costs.with_network_fit(0.0, 0.0, "the fit's baseline"), keys)
    boundary_us = sum(costs.boundary_beyond_fixed_us(key) for key in keys)
    boundary_us -= costs.edges_beyond_fixed_us(keys[0], keys[-1])
    return FitNetworkTerms(fixed_only_us, boundary_us, measured_us)


def fit_network_costs(costs: LutCosts, space: SearchSpace) -> LutCosts:
    """`costs` predicting with the boundary share and network offset fitted on the fit networks of `space` in the
    LUT or, where the agent measured no overhead, with one invocation cost fitted on them; unchanged (its summary saying why) where
    the LUT lacks one of those networks or their blocks, and for raw sums asked for."""
    if costs.raw_asked or costs.fixed_source != FIXED_MEASURED:  # raw sums asked for, or fitted already
        return costs
    keys = [op.key for op in fit_ops(space.params)]
    op_keys = [[op.key for op in ops_for_architecture(arch, space)] for arch in fit_architectures()]
    missing = [key for key in keys if key not in costs.median_us]
    lacking = sorted({key for keys_of_one in op_keys for key in keys_of_one if key not in costs.median_us})
    if missing:
        reason = (
            f"not fitted: the LUT lacks {len(missing)} of the {len(keys)} whole networks that fit it "
            "(`dnas lut request` queues them with the space's ops)"
        )
    elif lacking:
        reason = f"not fitted: the LUT lacks {len(lacking)} ops the fit networks run (e.g. {lacking[0]})"
    else:
        reason = ""
    if not costs.overhead_once:
        if reason:
            return replace(costs, raw_reason=f"{costs.raw_reason}; {reason}")
        networks = [
            ([costs.median_us[op] for op in keys_of_one], costs.median_us[key])
            for keys_of_one, key in zip(op_keys, keys, strict=True)
        ]
        fitted = costs.with_fitted_invocation_us(least_squares_invocation_us(networks), "")
        return replace(
            fitted,
            fixed_source=f"fitted on {len(keys)} whole networks measured on the device, their mean error then "
            f"{_mean_error_pct(fitted, op_keys, keys):.1f} %; the agent measured no overhead",
        )
    if reason:
        return costs.with_network_fit(0.0, 0.0, f"{reason}; only the fixed cost is counted once")
    baseline = costs.with_network_fit(0.0, 0.0, "the fit's baseline")
    fit = least_squares_fit(
        [
            network_terms(baseline, keys_of_one, costs.median_us[key])
            for keys_of_one, key in zip(op_keys, keys, strict=True)
        ],
        lowest_offset_us=-fastest_network_us(baseline, space) / 2.0,
    )
    fitted = costs.with_network_fit(fit.share, fit.offset_us, "")
    return replace(
        fitted,
        fit_source=f"fitted on {len(keys)} whole networks measured on the device (their mean error then "
        f"{_mean_error_pct(fitted, op_keys, keys):.1f} %)",
    )


def fastest_network_us(costs: LutCosts, space: SearchSpace) -> float:
    """The prediction of the space's fastest architecture: its fixed ops, the cheapest candidate of each layer (an
    identity skip costs 0) and what a network pays once; the LUT must hold every op of the space."""
    fixed_keys = [op.key for op in fixed_ops(space)]
    cheapest_us = sum(
        min(0.0 if op is None else costs.in_network_us(op.key) for op in row) for row in candidate_ops(space)
    )
    once_us = costs.network_once_us(fixed_keys[0], fixed_keys[-1])
    return sum(costs.in_network_us(key) for key in fixed_keys) + cheapest_us + once_us


def _mean_error_pct(costs: LutCosts, op_keys: list[list[str]], keys: list[str]) -> float:
    """The mean |relative error| of `costs`' predictions of the fit networks (`keys`, running `op_keys`)."""
    errors = [
        abs(network_latency_us(costs, keys_of_one) / costs.median_us[key] - 1.0) * 100.0
        for keys_of_one, key in zip(op_keys, keys, strict=True)
    ]
    return sum(errors) / len(errors)


def lut_ops(space: SearchSpace) -> list[Op]:
    """What a device's LUT needs for `space`: the space's ops, then the whole networks that fit its boundary
    share and network offset (`dnas lut request` and `dnas export-ops` take this list)."""
    return [*ops_for_space(space), *fit_ops(space.params)]
