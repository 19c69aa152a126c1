"""The validation summary against values worked out by hand (and Kendall's tau-b against scipy's)."""

from __future__ import annotations

import math

import pytest
from scipy.stats import kendalltau

from profiler_server.services.validation_summary import kendall_tau_b, summarise, summarise_by_split


def test_summary_of_four_points_by_hand():
    # errors +10%, -5%, 0%, -20%: |e| = .10 .05 0 .20
    summary = summarise([110.0, 190.0, 300.0, 400.0], [100.0, 200.0, 300.0, 500.0])
    assert summary.n == 4
    assert summary.mape_pct == pytest.approx(8.75)  # (10 + 5 + 0 + 20) / 4
    assert summary.within_5_pct == 50.0  # -5% (on the border, counted) and 0%
    assert summary.within_10_pct == 75.0  # +10% on the border, -5%, 0%
    assert summary.mean_signed_error_pct == pytest.approx(-3.75)  # (10 - 5 + 0 - 20) / 4
    assert summary.kendall_tau == 1.0  # both sides increase together


def test_kendall_tau_b_one_discordant_pair():
    # pairs of (1,2,3,4) vs (1,3,2,4): only (2,3) is discordant -> (5 - 1) / 6
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)


def test_kendall_tau_b_with_ties_on_both_sides():
    # x ties one pair, y ties another: score 4 of n0 = 6 -> 4 / sqrt((6 - 1) * (6 - 1)) = 0.8
    assert kendall_tau_b([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(0.8)


def test_kendall_tau_b_reversed_order_is_minus_one():
    assert kendall_tau_b([1, 2, 3], [30, 20, 10]) == -1.0


@pytest.mark.parametrize(
    ("x", "y"), [([5.0], [7.0]), ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]), ([1.0, 2.0], [4.0, 4.0])]
)
def test_kendall_tau_b_undefined_for_one_point_or_a_constant_side(x, y):
    assert kendall_tau_b(x, y) is None


def test_kendall_tau_b_matches_scipy_on_a_tied_random_sample():
    values_x = [float((i * 37) % 11) for i in range(40)]
    values_y = [float((i * 53) % 7 + (i % 3)) for i in range(40)]
    expected = kendalltau(values_x, values_y, variant="b").statistic
    assert kendall_tau_b(values_x, values_y) == pytest.approx(expected, abs=1e-12)


def test_summary_per_split_only_for_the_splits_present():
    predicted = [100.0, 220.0, 330.0, 480.0, 500.0]
    measured = [100.0, 200.0, 300.0, 400.0, 500.0]
    by_split = summarise_by_split(predicted, measured, [None, "fit", "fit", "holdout", "holdout"])
    assert sorted(by_split) == ["all", "fit", "holdout"]
    assert by_split["fit"]["n"] == 2 and by_split["fit"]["mape_pct"] == pytest.approx(10.0)
    assert by_split["holdout"]["mape_pct"] == pytest.approx(10.0)  # (20 + 0) / 2
    assert by_split["holdout"]["within_10_pct"] == 50.0
    assert by_split["all"]["mape_pct"] == pytest.approx(8.0)  # (0 + 10 + 10 + 20 + 0) / 5
    assert sorted(summarise_by_split([1.0], [1.0], [None])) == ["all"]


def test_summary_refuses_no_points_and_non_positive_measurements():
    with pytest.raises(ValueError, match="no points"):
        summarise([], [])
    with pytest.raises(ValueError, match="> 0"):
        summarise([1.0], [0.0])
    assert math.isclose(summarise([2.0], [1.0]).mean_signed_error_pct, 100.0)
