"""Fidelity of a LUT's predictions: pure functions of (predicted_us, measured_us) pairs.

Errors are relative to the measurement: error_i = (predicted_i - measured_i) / measured_i.
- mape_pct: mean of |error_i|, in percent;
- within_5_pct / within_10_pct: share of points with |error_i| <= 5% / 10%, in percent;
- mean_signed_error_pct: mean of error_i, in percent (> 0: the LUT's sum over-predicts, i.e. a bias);
- kendall_tau: Kendall's tau-b between predicted and measured (does the LUT rank networks right?), None when
  fewer than two points or when either side is constant (tau-b is undefined there).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# Tolerances the acceptance criteria use; a point exactly on the border counts as within.
WITHIN_TIGHT = 0.05
WITHIN_LOOSE = 0.10
# Relative error of float rounding, so that 105 vs 100 counts as within 5%.
_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Summary:
    n: int
    mape_pct: float
    within_5_pct: float
    within_10_pct: float
    kendall_tau: float | None
    mean_signed_error_pct: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def relative_errors(predicted_us: Sequence[float], measured_us: Sequence[float]) -> list[float]:
    if len(predicted_us) != len(measured_us):
        raise ValueError("predicted_us and measured_us must have the same length")
    return [(p - m) / m for p, m in zip(predicted_us, measured_us, strict=True)]


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _tied_pairs(values: Iterable[float]) -> int:
    counts: dict[float, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return sum(c * (c - 1) // 2 for c in counts.values())


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b = (concordant - discordant) / sqrt((n0 - ties_x) * (n0 - ties_y)), n0 = n(n-1)/2.

    O(n^2): validation runs are at most a few thousand networks (the API caps the points per run).
    """
    n = len(x)
    if n != len(y):
        raise ValueError("x and y must have the same length")
    if n < 2:
        return None
    score = 0
    for i in range(n):
        xi, yi = x[i], y[i]
        for j in range(i + 1, n):
            score += _sign(xi - x[j]) * _sign(yi - y[j])
    n0 = n * (n - 1) // 2
    denominator = math.sqrt((n0 - _tied_pairs(x)) * (n0 - _tied_pairs(y)))
    if denominator == 0:
        return None
    return score / denominator


def summarise(predicted_us: Sequence[float], measured_us: Sequence[float]) -> Summary:
    """The summary of a non-empty set of points; every measurement must be > 0."""
    if not measured_us:
        raise ValueError("no points to summarise")
    if any(m <= 0 for m in measured_us):
        raise ValueError("measured_us must be > 0")
    errors = relative_errors(predicted_us, measured_us)
    n = len(errors)
    abs_errors = [abs(e) for e in errors]
    return Summary(
        n=n,
        mape_pct=100.0 * sum(abs_errors) / n,
        within_5_pct=100.0 * sum(e <= WITHIN_TIGHT + _EPS for e in abs_errors) / n,
        within_10_pct=100.0 * sum(e <= WITHIN_LOOSE + _EPS for e in abs_errors) / n,
        kendall_tau=kendall_tau_b(predicted_us, measured_us),
        mean_signed_error_pct=100.0 * sum(errors) / n,
    )


def summarise_by_split(
    predicted_us: Sequence[float], measured_us: Sequence[float], splits: Sequence[str | None]
) -> dict[str, dict[str, Any]]:
    """{"all": summary} plus one summary per named split present (e.g. "fit" and "holdout" of a calibration)."""
    result = {"all": summarise(predicted_us, measured_us).to_json()}
    for split in sorted({s for s in splits if s is not None}):
        chosen = [i for i, s in enumerate(splits) if s == split]
        result[split] = summarise(
            [predicted_us[i] for i in chosen], [measured_us[i] for i in chosen]
        ).to_json()
    return result
