"""How well predicted latencies match measured ones: pure metrics over paired sequences.

Errors are relative to the measurement (the truth): error = (predicted - measured) / measured. A negative
mean signed error means the prediction is too fast, as a summed block LUT usually is on a CPU (blocks timed
alone run with warm caches). Kendall's tau (tau-b, ties handled) says whether the prediction ranks networks
the way the device does, which is what a search needs most.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import kendalltau

from search_client.errors import SearchClientError


class FidelityInputError(SearchClientError, ValueError):
    """Paired sequences that cannot be compared (different lengths, empty, non-positive measurements)."""


@dataclass(frozen=True)
class FidelitySummary:
    count: int
    mape_pct: float
    mean_signed_error_pct: float
    max_abs_error_pct: float
    within_5_pct: float  # share of networks, in percent
    within_10_pct: float
    kendall_tau: float | None  # None with fewer than two networks or when every value ties

    def to_json(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "mape_pct": self.mape_pct,
            "mean_signed_error_pct": self.mean_signed_error_pct,
            "max_abs_error_pct": self.max_abs_error_pct,
            "within_5_pct": self.within_5_pct,
            "within_10_pct": self.within_10_pct,
            "kendall_tau": self.kendall_tau,
        }


def _check_pairs(predicted: Sequence[float], measured: Sequence[float]) -> None:
    if len(predicted) != len(measured):
        raise FidelityInputError(f"{len(predicted)} predictions for {len(measured)} measurements")
    if not measured:
        raise FidelityInputError("no networks to compare")
    values = [*predicted, *measured]
    if not all(math.isfinite(value) for value in values):
        raise FidelityInputError("latencies must be finite numbers")
    if any(value <= 0 for value in measured):
        raise FidelityInputError("measured latencies must be positive (they divide the errors)")


def relative_errors_pct(predicted: Sequence[float], measured: Sequence[float]) -> list[float]:
    """(predicted - measured) / measured, in percent, per network."""
    _check_pairs(predicted, measured)
    return [100.0 * (p - m) / m for p, m in zip(predicted, measured, strict=True)]


def mape_pct(predicted: Sequence[float], measured: Sequence[float]) -> float:
    errors = relative_errors_pct(predicted, measured)
    return sum(abs(error) for error in errors) / len(errors)


def share_within_pct(predicted: Sequence[float], measured: Sequence[float], tolerance_pct: float) -> float:
    """Percentage of networks whose relative error is within +-tolerance_pct (inclusive)."""
    errors = relative_errors_pct(predicted, measured)
    return 100.0 * sum(abs(error) <= tolerance_pct for error in errors) / len(errors)


def kendall_tau(predicted: Sequence[float], measured: Sequence[float]) -> float | None:
    _check_pairs(predicted, measured)
    if len(predicted) < 2:
        return None
    tau = kendalltau(predicted, measured).statistic
    return None if math.isnan(tau) else float(tau)


def summarize(predicted: Sequence[float], measured: Sequence[float]) -> FidelitySummary:
    errors = relative_errors_pct(predicted, measured)
    return FidelitySummary(
        count=len(errors),
        mape_pct=mape_pct(predicted, measured),
        mean_signed_error_pct=sum(errors) / len(errors),
        max_abs_error_pct=max(abs(error) for error in errors),
        within_5_pct=share_within_pct(predicted, measured, 5.0),
        within_10_pct=share_within_pct(predicted, measured, 10.0),
        kendall_tau=kendall_tau(predicted, measured),
    )
