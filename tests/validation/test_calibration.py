"""Calibration: a seeded fit / holdout split that never overlaps, and a fit that recovers a known line."""

from __future__ import annotations

import pytest

from search_client.validation.calibration import CalibrationError, fit_linear, split_names

NAMES = [f"random_{index:03d}" for index in range(30)]


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8])
def test_split_is_disjoint_covers_every_name_and_has_the_asked_size(seed, fraction):
    split = split_names(NAMES, fraction, seed)
    assert not set(split.fit) & set(split.holdout)
    assert sorted(split.fit + split.holdout) == sorted(NAMES)
    assert len(split.fit) == round(len(NAMES) * fraction)


def test_split_is_seeded():
    assert split_names(NAMES, 0.5, 3) == split_names(NAMES, 0.5, 3)
    assert split_names(NAMES, 0.5, 3) != split_names(NAMES, 0.5, 4)


@pytest.mark.parametrize(
    ("names", "fraction", "message"),
    [
        (["a", "a", "b", "c"], 0.5, "unique"),
        (NAMES, 1.0, "between 0 and 1"),
        (["a", "b", "c"], 0.5, "at least 2"),
    ],
)
def test_split_refuses_what_cannot_be_split(names, fraction, message):
    with pytest.raises(CalibrationError, match=message):
        split_names(names, fraction)


def test_fit_recovers_an_exact_line():
    predicted = [1000.0, 2000.0, 3500.0, 5000.0]
    measured = [1.04 * p + 150.0 for p in predicted]
    calibration = fit_linear(predicted, measured)
    assert calibration.scale == pytest.approx(1.04)
    assert calibration.offset_us == pytest.approx(150.0)
    assert calibration.apply_us(4000.0) == pytest.approx(1.04 * 4000 + 150)
    assert calibration.fit_count == 4


def test_fit_minimises_relative_error_so_a_small_network_weighs_as_much_as_a_large_one():
    # Scale-only data with one outlier: relative weighting keeps the small networks' errors small too.
    predicted = [100.0, 200.0, 10000.0]
    measured = [110.0, 220.0, 10500.0]
    calibration = fit_linear(predicted, measured)
    errors = [abs(calibration.apply_us(p) - m) / m for p, m in zip(predicted, measured, strict=True)]
    assert max(errors) < 0.03


@pytest.mark.parametrize(
    ("predicted", "measured", "message"),
    [
        ([1.0], [1.0], "at least 2"),
        ([1.0, 2.0], [1.0], "1 measurements"),
        ([5.0, 5.0], [1.0, 2.0], "same prediction"),
        ([1.0, 2.0], [1.0, -2.0], "positive"),
    ],
)
def test_fit_refuses_degenerate_input(predicted, measured, message):
    with pytest.raises(CalibrationError, match=message):
        fit_linear(predicted, measured)
