"""Fidelity metrics against values worked out by hand."""

from __future__ import annotations

import pytest

from search_client.fidelity import (
    FidelityInputError,
    kendall_tau,
    mape_pct,
    relative_errors_pct,
    share_within_pct,
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
