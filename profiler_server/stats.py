"""Statistics of raw latency samples, computed once at ingest and stored next to the samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Below this many samples the spread cannot be judged, so the entry is flagged unstable.
MIN_SAMPLES_TO_JUDGE_STABILITY = 5


@dataclass(frozen=True, slots=True)
class SampleStats:
    n: int
    median_us: float
    p10_us: float
    p90_us: float
    mean_us: float
    std_us: float
    iqr_us: float
    min_us: float
    max_us: float
    cv: float
    unstable: bool


def sample_stats(samples_us: Sequence[float], unstable_iqr_ratio: float) -> SampleStats:
    """Median and spread of positive, finite samples (validated by the caller).

    Percentiles interpolate linearly (numpy's default); `std_us` is the sample standard deviation (ddof=1);
    `cv` = std / mean; `unstable` when IQR / median >= `unstable_iqr_ratio` or there are too few samples.
    """
    values = np.asarray(samples_us, dtype=np.float64)
    n = int(values.size)
    if n == 0:
        raise ValueError("no samples")
    p10, p25, p50, p75, p90 = (float(v) for v in np.percentile(values, [10, 25, 50, 75, 90]))
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    iqr = p75 - p25
    unstable = n < MIN_SAMPLES_TO_JUDGE_STABILITY or iqr / p50 >= unstable_iqr_ratio
    stats = SampleStats(
        n=n,
        median_us=p50,
        p10_us=p10,
        p90_us=p90,
        mean_us=mean,
        std_us=std,
        iqr_us=iqr,
        min_us=float(values.min()),
        max_us=float(values.max()),
        cv=std / mean,
        unstable=bool(unstable),
    )
    if not math.isfinite(stats.std_us):
        raise ValueError("samples overflow float64")
    return stats
