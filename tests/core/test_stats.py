"""Sample statistics (the server's at ingest, the agent's re-measure rule), checked against the statistics module."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from fbnet_core.stats import sample_stats


def test_stats_match_reference_implementations():
    samples = [float(v) for v in np.random.default_rng(7).lognormal(mean=6.0, sigma=0.05, size=201)]
    stats = sample_stats(samples, unstable_iqr_ratio=0.1)
    assert stats.n == 201
    assert stats.median_us == pytest.approx(statistics.median(samples))
    assert stats.mean_us == pytest.approx(statistics.fmean(samples))
    assert stats.std_us == pytest.approx(statistics.stdev(samples))
    quartiles = statistics.quantiles(samples, n=4, method="inclusive")
    assert stats.iqr_us == pytest.approx(quartiles[2] - quartiles[0])
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    assert (stats.p10_us, stats.p90_us) == pytest.approx((deciles[0], deciles[-1]))
    assert stats.cv == pytest.approx(stats.std_us / stats.mean_us)
    assert (stats.min_us, stats.max_us) == (min(samples), max(samples))
    assert not stats.unstable


def test_wide_spread_and_too_few_samples_are_flagged_unstable():
    assert sample_stats([100.0, 100.0, 130.0, 130.0, 160.0], unstable_iqr_ratio=0.1).unstable
    assert not sample_stats([100.0, 100.5, 101.0, 100.2, 100.1], unstable_iqr_ratio=0.1).unstable
    single = sample_stats([42.0], unstable_iqr_ratio=0.1)
    assert single.unstable and single.std_us == 0.0 and single.median_us == 42.0


def test_no_samples_is_an_error():
    with pytest.raises(ValueError, match="no samples"):
        sample_stats([], unstable_iqr_ratio=0.1)
