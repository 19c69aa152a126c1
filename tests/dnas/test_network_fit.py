"""The work scale and boundary share (or, where the agent measured no overhead, one invocation cost per op):
fitted from whole networks measured on the device, applied by the predictor and the search's latency table
alike, and left out (said so) where the LUT lacks the networks that fit it."""

from __future__ import annotations

import pytest

from fbnet_core.arch import Architecture
from fbnet_core.keys import ops_for_architecture, ops_for_space
from fbnet_core.lut_costs import LutCosts
from fbnet_core.network_fit import (
    FitNetworkTerms,
    NetworkFit,
    fit_architectures,
    fit_network_costs,
    fit_ops,
    least_squares_fit,
    least_squares_invocation_us,
    lut_ops,
)
from fbnet_core.predict import predict_latency_us
from fbnet_core.space import fbnet_space
from search_client.lut.latency import latency_table_for_space
from search_client.search.budget import table_ms

SPACE = fbnet_space(resolution=16, width=0.5, num_classes=10, head_channels=128, small_input=True)
ARCH = Architecture(("k3_e1", "skip", "k5_e6", "k3_e3") * 5 + ("k5_e1_g2", "skip"))
FIXED_US = 2.5


def space_entries() -> dict[str, dict]:
    """Distinct medians and boundary overheads per op (input side 4 + i/100, output side 6 + i/100, fixed 2.5)."""
    entries = {}
    for index, op in enumerate(ops_for_space(SPACE)):
        input_us, output_us = 4.0 + 0.01 * index, 6.0 + 0.01 * index
        entries[op.key] = {
            "median_us": 30.0 + index,
            "invocation_overhead": {
                "us": (input_us + output_us) / 2,
                "input_us": input_us,
                "output_us": output_us,
                "fixed_us": FIXED_US,
            },
        }
    return entries


def by_hand_us(entries: dict[str, dict], arch: Architecture, share: float, work_scale: float = 1.0) -> float:
    """lut_costs.py's formula written out: each op's work (median less fixed) scaled, less share x its boundary
    beyond fixed, plus the network's fixed cost and share x its own two edges."""
    keys = [op.key for op in ops_for_architecture(arch, SPACE)]
    total = 0.0
    for key in keys:
        overhead = entries[key]["invocation_overhead"]
        total += work_scale * (entries[key]["median_us"] - FIXED_US) - share * (overhead["us"] - FIXED_US)
    first, last = entries[keys[0]]["invocation_overhead"], entries[keys[-1]]["invocation_overhead"]
    edges_us = ((first["input_us"] - FIXED_US) + (last["output_us"] - FIXED_US)) / 2
    return total + FIXED_US + share * edges_us


def with_fit_networks(
    entries: dict[str, dict], share: float, noise: tuple[float, ...] = (), work_scale: float = 1.0
) -> dict[str, dict]:
    """`entries` plus the fit networks, each measured at what `share` and `work_scale` predict (times a noise
    factor)."""
    measured = dict(entries)
    for index, (arch, op) in enumerate(zip(fit_architectures(), fit_ops(SPACE.params), strict=True)):
        factor = noise[index] if noise else 1.0
        measured[op.key] = {"median_us": by_hand_us(entries, arch, share, work_scale) * factor}
    # A network entry has its own overhead figure in a real LUT; the fit does not use it.
    for op in fit_ops(SPACE.params):
        measured[op.key]["invocation_overhead"] = {
            "us": 9.0,
            "input_us": 9.0,
            "output_us": 9.0,
            "fixed_us": FIXED_US,
        }
    return measured


@pytest.mark.parametrize("work_scale", [0.8, 1.0, 1.3])
def test_the_fit_recovers_the_scale_and_share_of_networks_measured_at_them_and_predicts_with_the_formula(
    work_scale: float,
) -> None:
    entries = space_entries()
    costs = fit_network_costs(LutCosts.from_entries(with_fit_networks(entries, 0.6, work_scale=work_scale)), SPACE)
    assert (costs.work_scale, costs.boundary_share) == pytest.approx((work_scale, 0.6))
    assert "fitted on 5 whole networks" in costs.fit_source and "mean error then 0.0 %" in costs.fit_source
    assert f"work scale {work_scale:.2f}, boundary share 0.60" in costs.summary_line()
    assert predict_latency_us(costs, ARCH, SPACE) == pytest.approx(by_hand_us(entries, ARCH, 0.6, work_scale))
    # A LUT fitted already (a search re-reads what validate fitted) fits to the same values.
    refitted = fit_network_costs(costs, SPACE)
    assert (refitted.work_scale, refitted.boundary_share) == pytest.approx((work_scale, 0.6))
    # scale 1 and share 0 is the fixed cost alone, counted once
    unfitted = LutCosts.from_entries(entries)
    keys = [op.key for op in ops_for_architecture(ARCH, SPACE)]
    raw_us = sum(entries[key]["median_us"] for key in keys)
    assert predict_latency_us(unfitted, ARCH, SPACE) == pytest.approx(raw_us - FIXED_US * (len(keys) - 1))


def test_the_search_table_predicts_what_the_predictor_does_with_a_fitted_scale_and_share() -> None:
    costs = fit_network_costs(LutCosts.from_entries(with_fit_networks(space_entries(), 0.8, work_scale=1.1)), SPACE)
    table = latency_table_for_space(SPACE, costs)
    for arch in (ARCH, Architecture(("skip",) * 22), *fit_architectures()):
        assert table_ms(table, list(arch.blocks)) * 1000.0 == pytest.approx(
            predict_latency_us(costs, arch, SPACE)
        )


def loss(networks: list[FitNetworkTerms], fit: NetworkFit) -> float:
    """The squared relative errors least_squares_fit minimises, written out."""
    return sum(
        ((fit.work_scale * n.work_us - fit.share * n.boundary_us + n.once_us - n.measured_us) / n.measured_us) ** 2
        for n in networks
    )


def test_noisy_networks_give_the_least_squares_scale_and_share_of_their_relative_errors() -> None:
    networks = [
        FitNetworkTerms(100.0, 20.0, 2.0, 90.0),
        FitNetworkTerms(200.0, 30.0, 2.0, 185.0),
        FitNetworkTerms(30.0, 15.0, 2.0, 20.0),
    ]
    fit = least_squares_fit(networks)
    # inside the ranges the least-squares point: no point of a fine grid around it does better
    assert 0.5 < fit.work_scale < 2.0 and 0.0 < fit.share < 1.0
    steps = range(-20, 21)
    grid = [NetworkFit(fit.work_scale + i / 1000.0, fit.share + j / 1000.0) for i in steps for j in steps]
    assert loss(networks, fit) <= min(loss(networks, point) for point in grid) + 1e-15
    costs = fit_network_costs(
        LutCosts.from_entries(
            with_fit_networks(space_entries(), 0.5, noise=(1.02, 0.98, 1.01, 0.99, 1.0), work_scale=0.9)
        ),
        SPACE,
    )
    # 2 % noise on networks whose boundary work is a tenth of their work: the scale is found, the share loosely
    assert 0.85 < costs.work_scale < 0.95 and 0.0 <= costs.boundary_share <= 1.0


@pytest.mark.parametrize(
    ("networks", "expected"),
    [
        # exactly fitted by share 1.5 at scale 1: the share held at 1
        ([FitNetworkTerms(100.0, 20.0, 0.0, 70.0), FitNetworkTerms(50.0, 20.0, 0.0, 20.0)], (None, 1.0)),
        # exactly fitted by scale 3 at share 0.5: the scale held at 2, where the best share is 0
        ([FitNetworkTerms(100.0, 20.0, 0.0, 290.0), FitNetworkTerms(50.0, 30.0, 0.0, 135.0)], (2.0, 0.0)),
        # no boundary work: the share stays 0, the scale explains both networks
        ([FitNetworkTerms(100.0, 0.0, 5.0, 95.0), FitNetworkTerms(50.0, 0.0, 5.0, 50.0)], (0.9, 0.0)),
    ],
)
def test_the_fit_keeps_to_its_ranges_at_the_best_point_there(
    networks: list[FitNetworkTerms], expected: tuple[float | None, float]
) -> None:
    fit = least_squares_fit(networks)
    scale, share = expected
    assert fit.share == pytest.approx(share)
    if scale is not None:
        assert fit.work_scale == pytest.approx(scale)
    # no point of the ranges does better (a grid over them)
    grid = [NetworkFit(0.5 + i * 1.5 / 300, j / 100) for i in range(301) for j in range(101)]
    assert loss(networks, fit) <= min(loss(networks, point) for point in grid) + 1e-12


@pytest.mark.parametrize(("measured_share", "fitted"), [(1.6, 1.0), (-0.7, 0.0)])
def test_the_share_stays_between_0_and_1(measured_share: float, fitted: float) -> None:
    costs = fit_network_costs(
        LutCosts.from_entries(with_fit_networks(space_entries(), measured_share)), SPACE
    )
    assert costs.boundary_share == fitted


def test_a_lut_without_the_fit_networks_keeps_share_0_and_says_why() -> None:
    entries = with_fit_networks(space_entries(), 0.6)
    del entries[fit_ops(SPACE.params)[2].key]
    costs = fit_network_costs(LutCosts.from_entries(entries), SPACE)
    assert costs.boundary_share == 0.0
    assert (
        "lacks 1 of the 5 whole networks" in costs.fit_source
        and "dnas lut request" in costs.fit_source
    )
    assert costs.describe()["fit_source"] == costs.fit_source


def medians_with_networks_at(invocation_us: float, noise: tuple[float, ...] = ()) -> dict[str, float]:
    """Medians of the space's ops, without overhead figures, and of the fit networks measured as a runtime that
    pays `invocation_us` once per run would run them (times a noise factor)."""
    medians = {key: entry["median_us"] for key, entry in space_entries().items()}
    cheap = ops_for_architecture(fit_architectures()[0], SPACE)[2].key
    medians[cheap] = invocation_us / 2  # an op cheaper than the invocation itself adds 0 inside a network
    for index, (arch, op) in enumerate(zip(fit_architectures(), fit_ops(SPACE.params), strict=True)):
        keys = [block.key for block in ops_for_architecture(arch, SPACE)]
        whole_us = sum(max(0.0, medians[key] - invocation_us) for key in keys) + invocation_us
        medians[op.key] = whole_us * (noise[index] if noise else 1.0)
    return medians


def test_without_overhead_figures_one_invocation_cost_is_fitted_on_the_networks_and_counted_once() -> None:
    medians = medians_with_networks_at(12.0)
    costs = fit_network_costs(LutCosts(medians), SPACE)
    assert costs.overhead_once and costs.fixed_source.startswith("fitted on 5 whole networks")
    assert "invocation cost 12.0 us per op, counted once per network" in costs.summary_line()
    assert fit_network_costs(costs, SPACE) is costs  # a fitted LUT is not fitted again (as a search re-reads it)
    keys = [op.key for op in ops_for_architecture(ARCH, SPACE)]
    expected = sum(max(0.0, medians[key] - 12.0) for key in keys) + 12.0
    assert predict_latency_us(costs, ARCH, SPACE) == pytest.approx(expected)
    table = latency_table_for_space(SPACE, costs)
    assert table_ms(table, list(ARCH.blocks)) * 1000.0 == pytest.approx(expected)


def test_the_invocation_cost_is_the_least_squares_one_and_never_negative() -> None:
    noise = (1.03, 0.97, 1.02, 0.99, 1.01)
    fitted_us = least_squares_invocation_us(
        [
            ([medians_with_networks_at(8.0)[block.key] for block in ops_for_architecture(arch, SPACE)],
             medians_with_networks_at(8.0, noise)[op.key])
            for arch, op in zip(fit_architectures(), fit_ops(SPACE.params), strict=True)
        ]
    )  # fmt: skip
    # A coarse scan of the same squared relative errors finds no better cost.
    assert 6.0 < fitted_us < 10.0

    def loss(invocation_us: float) -> float:
        total = 0.0
        for measured_us, medians in (
            (100.0, [30.0, 40.0, 50.0]),
            (60.0, [20.0, 45.0]),
        ):
            predicted = sum(max(0.0, m - invocation_us) for m in medians) + invocation_us
            total += ((predicted - measured_us) / measured_us) ** 2
        return total

    by_hand = least_squares_invocation_us([([30.0, 40.0, 50.0], 100.0), ([20.0, 45.0], 60.0)])
    assert loss(by_hand) <= min(loss(step / 10.0) for step in range(0, 600)) + 1e-12
    # networks measured above their raw sums: no cost explains them, and none below 0 is taken
    assert least_squares_invocation_us([([30.0, 40.0], 90.0)]) == 0.0


def test_raw_sums_asked_for_are_never_fitted() -> None:
    costs = fit_network_costs(LutCosts(medians_with_networks_at(12.0)).raw(), SPACE)
    assert not costs.overhead_once and costs.raw_reason == "raw sums asked for"
    keys = [op.key for op in ops_for_architecture(ARCH, SPACE)]
    assert predict_latency_us(costs, ARCH, SPACE) == pytest.approx(sum(costs.median_us[key] for key in keys))


def test_a_lut_without_overhead_figures_or_fit_networks_stays_a_raw_sum_and_says_why() -> None:
    medians = medians_with_networks_at(12.0)
    del medians[fit_ops(SPACE.params)[0].key]
    costs = fit_network_costs(LutCosts(medians), SPACE)
    assert not costs.overhead_once
    assert "lacks 1 of the 5 whole networks" in costs.summary_line()
    expected = sum(medians[op.key] for op in ops_for_architecture(ARCH, SPACE))
    assert predict_latency_us(costs, ARCH, SPACE) == pytest.approx(expected)


def test_the_fit_networks_are_fixed_distinct_and_requested_with_the_space() -> None:
    architectures = fit_architectures()
    assert architectures == fit_architectures() and len(set(architectures)) == 5
    skips = [arch.blocks.count("skip") for arch in architectures]
    assert (
        skips[2] > max(skips[0], skips[1]) > skips[3]
    )  # one skewed toward cheap blocks, one toward expensive
    assert skips[4] == len(architectures[4].blocks)  # and the smallest network a search can reach
    ops = lut_ops(SPACE)
    assert ops[: len(ops_for_space(SPACE))] == ops_for_space(SPACE)
    assert [op.spec["kind"] for op in ops[len(ops_for_space(SPACE)) :]] == ["network"] * 5


def test_a_share_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        LutCosts.from_entries(space_entries()).with_network_fit(1.0, 1.5, "by hand")


def test_a_lut_lacking_a_block_of_the_fit_networks_keeps_share_0_and_names_it() -> None:
    entries = with_fit_networks(space_entries(), 0.6)
    block = ops_for_architecture(fit_architectures()[0], SPACE)[1].key
    del entries[block]
    costs = fit_network_costs(LutCosts.from_entries(entries), SPACE)
    assert costs.boundary_share == 0.0 and f"(e.g. {block})" in costs.fit_source
