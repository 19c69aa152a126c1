"""Statistics of raw latency samples: what the LUT serves (computed at ingest, stored next to the samples) and
what an agent judges its own measurement by, with one definition of "unstable" for both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# torch.utils.benchmark's threshold: a spread of IQR / median >= 10 % makes a median unreliable. The server's
# setting `unstable_iqr_ratio` defaults to it.
UNSTABLE_IQR_RATIO = 0.10
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

    @property
    def iqr_rel(self) -> float:
        """IQR over median: the spread the `unstable` flag is about."""
        return self.iqr_us / self.median_us if self.median_us > 0 else math.inf


def is_unstable(
    iqr_us: np.ndarray | float,
    median_us: np.ndarray | float,
    n: int,
    unstable_iqr_ratio: float = UNSTABLE_IQR_RATIO,
) -> np.ndarray:
    """The one definition of "unstable": IQR / median >= `unstable_iqr_ratio`, or fewer samples than
    MIN_SAMPLES_TO_JUDGE_STABILITY (element-wise over arrays of equally long sample lists)."""
    return (np.asarray(iqr_us) / median_us >= unstable_iqr_ratio) | (n < MIN_SAMPLES_TO_JUDGE_STABILITY)


def sample_stats(samples_us: Sequence[float], unstable_iqr_ratio: float = UNSTABLE_IQR_RATIO) -> SampleStats:
    """Median and spread of positive, finite samples (validated by the caller).

    Percentiles interpolate linearly (numpy's default); `std_us` is the sample standard deviation (ddof=1);
    `cv` = std / mean; `unstable` as `is_unstable` defines it.
    """
    return batch_stats([samples_us], unstable_iqr_ratio)[0]


def batch_stats(
    samples_us: Sequence[Sequence[float]], unstable_iqr_ratio: float = UNSTABLE_IQR_RATIO
) -> list[SampleStats]:
    """`sample_stats` of many sample lists; lists of equal length are computed together (one numpy call each)."""
    by_length: dict[int, list[int]] = {}
    for index, values in enumerate(samples_us):
        if len(values) == 0:
            raise ValueError("no samples")
        by_length.setdefault(len(values), []).append(index)
    out: list[SampleStats | None] = [None] * len(samples_us)
    for n, indices in by_length.items():
        values = np.sort(np.asarray([samples_us[i] for i in indices], dtype=np.float64), axis=1)
        p10, p25, p50, p75, p90 = _sorted_percentiles(values, (10, 25, 50, 75, 90))
        mean = values.mean(axis=1)
        std = values.std(axis=1, ddof=1) if n > 1 else np.zeros(len(indices))
        if not np.isfinite(std).all():
            raise ValueError("samples overflow float64")
        iqr = p75 - p25
        unstable = is_unstable(iqr, p50, n, unstable_iqr_ratio)
        minimum, maximum = values[:, 0], values[:, -1]
        for row, index in enumerate(indices):
            out[index] = SampleStats(
                n=n,
                median_us=float(p50[row]),
                p10_us=float(p10[row]),
                p90_us=float(p90[row]),
                mean_us=float(mean[row]),
                std_us=float(std[row]),
                iqr_us=float(iqr[row]),
                min_us=float(minimum[row]),
                max_us=float(maximum[row]),
                cv=float(std[row] / mean[row]),
                unstable=bool(unstable[row]),
            )
    return [s for s in out if s is not None]


def _sorted_percentiles(sorted_rows: np.ndarray, percents: tuple[float, ...]) -> list[np.ndarray]:
    """numpy's default ("linear") percentiles of each row of an already sorted matrix, without numpy.percentile's
    per-call overhead (which cost more than the whole rest of ingest's arithmetic): the value at fractional rank
    (n - 1) * q / 100, interpolated between its two neighbours."""
    n = sorted_rows.shape[1]
    out = []
    for q in percents:
        rank = (n - 1) * q / 100.0
        lower = int(np.floor(rank))
        upper = min(lower + 1, n - 1)
        fraction = rank - lower
        out.append(sorted_rows[:, lower] + (sorted_rows[:, upper] - sorted_rows[:, lower]) * fraction)
    return out
