"""Per-block-kind calibration and the leave-one-out choice between it and the linear map."""

from __future__ import annotations

import random

import pytest

from fbnet_core.keys import ops_for_architecture
from fbnet_core.space import SpaceParams, build_space
from search_client.space.zoo import get_model
from search_client.validation.calibration import CalibrationError
from search_client.validation.calibration_choice import LINEAR, PER_BLOCK_KIND, FitNetwork, choose_calibration
from search_client.validation.calibration_kinds import (
    FIXED,
    fit_kinds,
    latency_by_kind_us,
    min_fit_points,
    op_kind,
)

# A device where e1 blocks run at 0.8x their LUT value inside a network, e6 blocks at 1.25x, e3 at 1.0x, and the
# fixed ops cost 300 us more: errors of opposite sign that a single line cannot undo.
TRUE_SCALES = {"e1": 0.8, "e3": 1.0, "e6": 1.25}
TRUE_OFFSET_US = 300.0


def _network(rng: random.Random) -> FitNetwork:
    by_kind = {
        FIXED: 1500.0,
        "e1": rng.uniform(200, 2500),
        "e3": rng.uniform(200, 2500),
        "e6": rng.uniform(200, 2500),
    }
    measured = by_kind[FIXED] + sum(TRUE_SCALES[k] * by_kind[k] for k in TRUE_SCALES) + TRUE_OFFSET_US
    return FitNetwork(sum(by_kind.values()), by_kind, measured)


def test_every_op_of_a_network_has_a_kind_and_the_sums_add_up_to_the_prediction():
    entry = get_model("fbnet_b")
    ops = ops_for_architecture(entry.arch, build_space(SpaceParams(224)))
    breakdown = [(op, float(index + 1)) for index, op in enumerate(ops)]
    sums = latency_by_kind_us(breakdown)
    assert set(sums) == {FIXED, "e1", "e3", "e6"}
    assert sum(sums.values()) == pytest.approx(sum(latency for _, latency in breakdown))
    assert [op_kind(op) for op in ops].count(FIXED) == 3  # stem, head, pool + classifier
    assert {op_kind(op) for op in ops if op.spec["kind"] == "block"} <= {"e1", "e3", "e6"}


def test_fit_recovers_per_kind_scales_of_opposite_sign():
    rng = random.Random(0)
    networks = [_network(rng) for _ in range(15)]
    calibration = fit_kinds([n.by_kind_us for n in networks], [n.measured_us for n in networks])
    assert calibration.scales == pytest.approx(TRUE_SCALES)
    assert calibration.offset_us == pytest.approx(TRUE_OFFSET_US)
    probe = _network(rng)
    assert calibration.apply_us(probe.by_kind_us) == pytest.approx(probe.measured_us)


def test_too_few_fit_networks_for_four_coefficients_are_refused():
    rng = random.Random(1)
    networks = [_network(rng) for _ in range(min_fit_points() - 1)]
    with pytest.raises(CalibrationError, match="at least"):
        fit_kinds([n.by_kind_us for n in networks], [n.measured_us for n in networks])


def test_leave_one_out_chooses_per_kind_where_the_error_depends_on_the_mix_of_blocks():
    rng = random.Random(2)
    choice = choose_calibration([_network(rng) for _ in range(15)])
    assert choice.to_json()["kind"] == PER_BLOCK_KIND
    assert choice.loo_mape_pct[PER_BLOCK_KIND] < choice.loo_mape_pct[LINEAR]


def test_leave_one_out_keeps_the_line_where_one_scale_explains_everything():
    rng = random.Random(3)
    networks = []
    for _ in range(15):
        base = _network(rng)
        # One scale plus noise: four coefficients would fit the noise.
        noisy = 1.1 * base.predicted_us * rng.uniform(0.97, 1.03)
        networks.append(FitNetwork(base.predicted_us, base.by_kind_us, noisy))
    choice = choose_calibration(networks)
    assert choice.to_json()["kind"] == LINEAR
    assert choice.to_json()["leave_one_out_mape_pct_on_fit"] == choice.loo_mape_pct


def test_with_few_fit_networks_the_line_is_used_without_a_choice():
    rng = random.Random(4)
    choice = choose_calibration([_network(rng) for _ in range(5)])
    assert choice.to_json()["kind"] == LINEAR and choice.loo_mape_pct == {}
