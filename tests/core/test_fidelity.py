"""Fidelity metrics against values worked out by hand."""

from __future__ import annotations

import pytest

from fbnet_core.errors import FidelityInputError
from fbnet_core.fidelity import (
    kendall_tau,
    mape_pct,
    relative_errors_pct,
    share_within_pct,
    summarise_by_split,
    summarize,
)

# Errors by hand: (90-100)/100 = -10 %, (210-200)/200 = +5 %, (300-300)/300 = 0 %, (380-400)/400 = -5 %.
PREDICTED = [90.0, 210.0, 300.0, 380.0]
MEASURED = [100.0, 200.0, 300.0, 400.0]


def test_relative_errors_are_signed_and_relative_to_the_measurement():
    assert relative_errors_pct(PREDICTED, MEASURED) == pytest.approx([-10.0, 5.0, 0.0, -5.0])


def test_mape_is_the_mean_of_absolute_errors():
    assert mape_pct(PREDICTED, MEASURED) == pytest.approx((10 + 5 + 0 + 5) / 4)


def test_share_within_counts_the_boundary_as_inside():
    assert share_within_pct(PREDICTED, MEASURED, 5.0) == pytest.approx(75.0)
    assert share_within_pct(PREDICTED, MEASURED, 4.9) == pytest.approx(25.0)
    assert share_within_pct(PREDICTED, MEASURED, 10.0) == pytest.approx(100.0)


def test_kendall_tau_by_hand():
    # Orders agree on every pair: tau 1; fully reversed: -1.
    assert kendall_tau(PREDICTED, MEASURED) == pytest.approx(1.0)
    assert kendall_tau([4.0, 3.0, 2.0, 1.0], MEASURED) == pytest.approx(-1.0)
    # One swapped pair out of 6 (the last two): (5 concordant - 1 discordant) / 6.
    assert kendall_tau([1.0, 2.0, 4.0, 3.0], MEASURED) == pytest.approx(4 / 6)


def test_kendall_tau_is_undefined_for_one_network_or_all_ties():
    assert kendall_tau([1.0], [2.0]) is None
    assert kendall_tau([5.0, 5.0, 5.0], [1.0, 2.0, 3.0]) is None


def test_summary_collects_every_figure():
    summary = summarize(PREDICTED, MEASURED)
    assert summary.count == 4
    assert summary.mape_pct == pytest.approx(5.0)
    assert summary.mean_signed_error_pct == pytest.approx(-2.5)
    assert summary.max_abs_error_pct == pytest.approx(10.0)
    assert summary.within_5_pct == pytest.approx(75.0)
    assert summary.within_10_pct == pytest.approx(100.0)
    assert summary.kendall_tau == pytest.approx(1.0)
    assert summary.to_json()["mape_pct"] == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("predicted", "measured", "message"),
    [
        ([1.0], [1.0, 2.0], "1 predictions for 2"),
        ([], [], "no networks"),
        ([1.0], [0.0], "positive"),
        ([float("nan")], [1.0], "finite"),
    ],
)
def test_bad_input_is_a_typed_error(predicted, measured, message):
    with pytest.raises(FidelityInputError, match=message):
        summarize(predicted, measured)


def test_summary_of_four_points_by_hand_counts_the_borders_as_within():
    # errors +10%, -5%, 0%, -20%: |e| = .10 .05 0 .20
    summary = summarize([110.0, 190.0, 300.0, 400.0], [100.0, 200.0, 300.0, 500.0])
    assert summary.count == 4
    assert summary.mape_pct == pytest.approx(8.75)  # (10 + 5 + 0 + 20) / 4
    assert summary.within_5_pct == 50.0  # -5% (on the border, counted) and 0%
    assert summary.within_10_pct == 75.0  # +10% on the border, -5%, 0%
    assert summary.mean_signed_error_pct == pytest.approx(-3.75)  # (10 - 5 + 0 - 20) / 4
    assert summary.kendall_tau == 1.0  # both sides increase together


def test_kendall_tau_b_with_ties_on_both_sides():
    # x ties one pair, y ties another: score 4 of n0 = 6 -> 4 / sqrt((6 - 1) * (6 - 1)) = 0.8
    assert kendall_tau([1.0, 1.0, 2.0, 3.0], [1.0, 2.0, 2.0, 3.0]) == pytest.approx(0.8)


def test_kendall_tau_b_is_undefined_for_a_constant_measured_side():
    assert kendall_tau([1.0, 2.0], [4.0, 4.0]) is None


def test_stored_summary_per_split_only_for_the_splits_present():
    predicted = [100.0, 220.0, 330.0, 480.0, 500.0]
    measured = [100.0, 200.0, 300.0, 400.0, 500.0]
    by_split = summarise_by_split(predicted, measured, [None, "fit", "fit", "holdout", "holdout"])
    assert sorted(by_split) == ["all", "fit", "holdout"]
    assert by_split["fit"]["n"] == 2 and by_split["fit"]["mape_pct"] == pytest.approx(10.0)
    assert by_split["holdout"]["mape_pct"] == pytest.approx(10.0)  # (20 + 0) / 2
    assert by_split["holdout"]["within_10_pct"] == 50.0
    assert by_split["all"]["mape_pct"] == pytest.approx(8.0)  # (0 + 10 + 10 + 20 + 0) / 5
    assert sorted(by_split["all"]) == sorted(
        ["n", "mape_pct", "within_5_pct", "within_10_pct", "kendall_tau", "mean_signed_error_pct"]
    )
    assert sorted(summarise_by_split([1.0], [1.0], [None])) == ["all"]
