"""The work scale and the boundary share of a LUT, fitted from whole networks measured on the device.

An op timed alone pays the runtime's work at the edges of its graph (lut_costs.py): the fixed invocation cost,
which a network pays once, and layout conversions, of which a network pays only a part; and its own work runs
faster or slower inside a network than alone (what is in the caches differs). How large each is depends on the
runtime, the device and the tensor sizes, so it is measured, not assumed. `dnas lut request` queues five whole
networks of the space with its ops (two drawn uniformly, one skewed toward cheap blocks, one toward expensive
ones, and the one with a skip in every layer, the smallest a search can reach; `fit_ops`): with work scale k and
share s a network's prediction is k W - s B + F (W its ops' medians less the fixed cost, B the boundary work its
ops count beyond a network's own edges, F the fixed cost it pays once), and (k, s) minimise the squared relative
errors (sum of ((k W - s B + F - measured) / measured)^2, linear least squares) with k in [0.5, 2] and s in
[0, 1]. The smallest network matters: the four others differ in size by a factor of about two only, and a
search for a tight budget ends in networks of a few ops. The networks are drawn with their own seed, apart from
any `dnas validate` set, so a validation still judges the prediction on networks the fit never saw.

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
from fbnet_core.keys import Op, make_op, network_spec, ops_for_architecture, ops_for_space
from fbnet_core.lut_costs import FIXED_MEASURED, LutCosts
from fbnet_core.predict import network_latency_us
from fbnet_core.space import NUM_LAYERS, SearchSpace, SpaceParams

FIT_SEED = 7919  # the fit networks' own draw, apart from `dnas validate --seed`'s
FIT_UNIFORM = 2
FIT_SKEWED = 1  # toward cheap blocks, and as many toward expensive ones
FIT_NETWORKS = FIT_UNIFORM + 2 * FIT_SKEWED + 1  # and the smallest: a skip in every layer


def fit_architectures() -> list[Architecture]:
    """The architectures whose whole networks fit the work scale and boundary share (the same for every space)."""
    return [
        *random_architectures(FIT_UNIFORM, FIT_SEED),
        *random_architectures(FIT_SKEWED, FIT_SEED, "cheap"),
        *random_architectures(FIT_SKEWED, FIT_SEED, "expensive"),
        Architecture(("skip",) * NUM_LAYERS),
    ]


def fit_ops(params: SpaceParams) -> list[Op]:
    """The whole-network ops `dnas lut request` queues with a space's ops."""
    return [make_op(network_spec(arch, params)) for arch in fit_architectures()]


WORK_SCALE_RANGE = (0.5, 2.0)  # a network's work against its ops' alone: beyond this the LUT is not this device's


@dataclass(frozen=True)
class FitNetworkTerms:
    """One measured network, in us: its ops' work (medians less the fixed cost), the boundary work a share scales,
    the fixed cost it pays once, and its measured median."""

    work_us: float
    boundary_us: float
    once_us: float
    measured_us: float


@dataclass(frozen=True)
class NetworkFit:
    """A fitted work scale (0.5 - 2) and boundary share (0 - 1)."""

    work_scale: float
    share: float


def least_squares_fit(networks: Sequence[FitNetworkTerms]) -> NetworkFit:
    """The work scale and share within their ranges minimising the squared relative errors of `networks`'
    predictions k W - s B + F."""
    # residual_i = k w_i - s b_i - r_i with w = W / M, b = B / M, r = (M - F) / M
    rows = [(n.work_us / n.measured_us, n.boundary_us / n.measured_us, (n.measured_us - n.once_us) / n.measured_us)
            for n in networks]  # fmt: skip
    sww = sum(w * w for w, _, _ in rows)
    sbb = sum(b * b for _, b, _ in rows)
    swb = sum(w * b for w, b, _ in rows)
    swr = sum(w * r for w, _, r in rows)
    sbr = sum(b * r for _, b, r in rows)
    low_k, high_k = WORK_SCALE_RANGE

    def best_scale(share: float) -> float:
        return min(high_k, max(low_k, (swr + share * swb) / sww))

    def best_share(scale: float) -> float:
        return 0.0 if sbb == 0.0 else min(1.0, max(0.0, (scale * swb - sbr) / sbb))

    def loss(fit: NetworkFit) -> float:
        return sum((fit.work_scale * w - fit.share * b - r) ** 2 for w, b, r in rows)

    # The normal equations k sww - s swb = swr and k swb - s sbb = sbr; where their solution lies outside the
    # ranges, the constrained optimum lies on a bound (the loss is a convex quadratic): one fixed, the other solved.
    determinant = sww * sbb - swb * swb
    if determinant > 1e-12 * sww * sbb:
        scale = (swr * sbb - swb * sbr) / determinant
        share = (swr * swb - sww * sbr) / determinant
        if low_k <= scale <= high_k and 0.0 <= share <= 1.0:
            return NetworkFit(scale, share)
    candidates = [NetworkFit(best_scale(share), share) for share in (0.0, 1.0)]
    candidates += [NetworkFit(scale, best_share(scale)) for scale in WORK_SCALE_RANGE]
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
    baseline = costs.with_network_fit(1.0, 0.0, "the fit's baseline")
    work_us = sum(baseline.in_network_us(key) for key in keys)
    boundary_us = sum(costs.boundary_beyond_fixed_us(key) for key in keys)
    boundary_us -= costs.edges_beyond_fixed_us(keys[0], keys[-1])
    return FitNetworkTerms(work_us, boundary_us, baseline.network_once_us(keys[0], keys[-1]), measured_us)


def fit_network_costs(costs: LutCosts, space: SearchSpace) -> LutCosts:
    """`costs` predicting with the work scale and boundary share fitted on the fit networks of `space` in the
    LUT or, where the agent measured no overhead, with one invocation cost fitted on them; unchanged (its summary
    saying why) where the LUT lacks one of those networks or their blocks, and for raw sums asked for."""
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
        return costs.with_network_fit(1.0, 0.0, f"{reason}; only the fixed cost is counted once")
    fit = least_squares_fit(
        [
            network_terms(costs, keys_of_one, costs.median_us[key])
            for keys_of_one, key in zip(op_keys, keys, strict=True)
        ]
    )
    fitted = costs.with_network_fit(fit.work_scale, fit.share, "")
    return replace(
        fitted,
        fit_source=f"fitted on {len(keys)} whole networks measured on the device (their mean error then "
        f"{_mean_error_pct(fitted, op_keys, keys):.1f} %)",
    )


def _mean_error_pct(costs: LutCosts, op_keys: list[list[str]], keys: list[str]) -> float:
    """The mean |relative error| of `costs`' predictions of the fit networks (`keys`, running `op_keys`)."""
    errors = [
        abs(network_latency_us(costs, keys_of_one) / costs.median_us[key] - 1.0) * 100.0
        for keys_of_one, key in zip(op_keys, keys, strict=True)
    ]
    return sum(errors) / len(errors)


def lut_ops(space: SearchSpace) -> list[Op]:
    """What a device's LUT needs for `space`: the space's ops, then the whole networks that fit its boundary
    share and work scale (`dnas lut request` and `dnas export-ops` take this list)."""
    return [*ops_for_space(space), *fit_ops(space.params)]
