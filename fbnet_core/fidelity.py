"""How well predicted latencies match measured ones: pure metrics over paired sequences.

Errors are relative to the measurement (the truth): error = (predicted - measured) / measured. A negative
mean signed error means the prediction is too fast, as a summed block LUT usually is on a CPU (blocks timed
alone run with warm caches). Kendall's tau (tau-b, ties handled) says whether the prediction ranks networks
the way the device does, which is what a search needs most.

`dnas validate` writes `FidelitySummary.to_json()` into validation.json; the server stores the per-split summary
of `summarise_by_split` with each validation run (docs/protocol.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fbnet_core.errors import FidelityInputError

# Tolerances of the "within" shares, in percent; a point exactly on the border counts as within.
WITHIN_TIGHT_PCT = 5.0
WITHIN_LOOSE_PCT = 10.0
# Slack for float rounding (percentage points), so that an error on the border counts as within.
_BORDER_SLACK_PCT = 1e-10


@dataclass(frozen=True)
class FidelitySummary:
    count: int
    mape_pct: float
    mean_signed_error_pct: float
    max_abs_error_pct: float
    within_5_pct: float  # share of networks, in percent
    within_10_pct: float
    kendall_tau: float | None  # None with fewer than two networks or when either side is constant

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

    def to_stored_json(self) -> dict[str, Any]:
        """The summary a validation run stores on the server (docs/protocol.md): `n`, no maximum error."""
        return {
            "n": self.count,
            "mape_pct": self.mape_pct,
            "within_5_pct": self.within_5_pct,
            "within_10_pct": self.within_10_pct,
            "kendall_tau": self.kendall_tau,
            "mean_signed_error_pct": self.mean_signed_error_pct,
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
    return 100.0 * sum(abs(error) <= tolerance_pct + _BORDER_SLACK_PCT for error in errors) / len(errors)


def kendall_tau(predicted: Sequence[float], measured: Sequence[float]) -> float | None:
    """Kendall's tau-b; None where it is undefined (fewer than two networks, or a constant side)."""
    _check_pairs(predicted, measured)
    if len(predicted) < 2:
        return None
    # Imported here: only the callers of the metrics need scipy, not every part that imports this module.
    from scipy.stats import kendalltau

    tau = kendalltau(predicted, measured, variant="b").statistic
    return None if math.isnan(tau) else float(tau)


def summarize(predicted: Sequence[float], measured: Sequence[float]) -> FidelitySummary:
    errors = relative_errors_pct(predicted, measured)
    return FidelitySummary(
        count=len(errors),
        mape_pct=mape_pct(predicted, measured),
        mean_signed_error_pct=sum(errors) / len(errors),
        max_abs_error_pct=max(abs(error) for error in errors),
        within_5_pct=share_within_pct(predicted, measured, WITHIN_TIGHT_PCT),
        within_10_pct=share_within_pct(predicted, measured, WITHIN_LOOSE_PCT),
        kendall_tau=kendall_tau(predicted, measured),
    )


def summarise_by_split(
    predicted: Sequence[float], measured: Sequence[float], splits: Sequence[str | None]
) -> dict[str, dict[str, Any]]:
    """{"all": summary} plus one per named split present (e.g. "fit" and "holdout" of a calibration), each as
    the server stores it (`FidelitySummary.to_stored_json`)."""
    result = {"all": summarize(predicted, measured).to_stored_json()}
    for split in sorted({s for s in splits if s is not None}):
        chosen = [i for i, s in enumerate(splits) if s == split]
        result[split] = summarize([predicted[i] for i in chosen], [measured[i] for i in chosen]).to_stored_json()
    return result
