"""A per-device calibration of the LUT's summed prediction, learned from validation networks.

Where the sum of blocks is biased on a device (on a CPU it runs a few percent below the whole network: blocks
timed alone keep their caches warm), a linear map measured ~ scale * predicted + offset removes the systematic
part. It is fitted on a *fit* split of the random architectures and judged only on the *holdout* split (the
other random architectures and the zoo), so the figures it reports are not flattered by the data it saw.
The fit minimises the squared *relative* error, the quantity the fidelity metrics report.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from search_client.errors import SearchClientError

FIT = "fit"
HOLDOUT = "holdout"
DEFAULT_FIT_FRACTION = 0.5
MIN_FIT_POINTS = 2
MIN_SPLIT_POINTS = 2  # per side: a line needs two points, a holdout ranking too


class CalibrationError(SearchClientError, ValueError):
    """A calibration that cannot be fitted (too few points, degenerate predictions) or a bad split request."""


@dataclass(frozen=True)
class LinearCalibration:
    """calibrated_us = scale * predicted_us + offset_us."""

    scale: float
    offset_us: float
    fit_count: int

    def apply_us(self, predicted_us: float) -> float:
        return self.scale * predicted_us + self.offset_us

    def to_json(self) -> dict[str, float | int | str]:
        return {
            "kind": "linear",
            "scale": self.scale,
            "offset_us": self.offset_us,
            "fit_count": self.fit_count,
        }


@dataclass(frozen=True)
class Split:
    fit: tuple[str, ...]
    holdout: tuple[str, ...]


def split_names(names: Sequence[str], fit_fraction: float = DEFAULT_FIT_FRACTION, seed: int = 0) -> Split:
    """A seeded, disjoint fit / holdout split of `names` (each name lands in exactly one side)."""
    if len(set(names)) != len(names):
        raise CalibrationError("names to split must be unique")
    if not 0.0 < fit_fraction < 1.0:
        raise CalibrationError(f"fit fraction must be between 0 and 1, got {fit_fraction}")
    shuffled = list(names)
    random.Random(seed).shuffle(shuffled)
    fit_count = round(len(shuffled) * fit_fraction)
    if min(fit_count, len(shuffled) - fit_count) < MIN_SPLIT_POINTS:
        raise CalibrationError(
            f"{len(shuffled)} architectures give {fit_count} to fit and {len(shuffled) - fit_count} to hold out; "
            f"a calibration needs at least {MIN_SPLIT_POINTS} on each side: raise --n"
        )
    return Split(fit=tuple(sorted(shuffled[:fit_count])), holdout=tuple(sorted(shuffled[fit_count:])))


def fit_linear(predicted_us: Sequence[float], measured_us: Sequence[float]) -> LinearCalibration:
    """Least squares of (scale * p + offset - m) / m: weighted linear regression with weights 1 / m^2."""
    if len(predicted_us) != len(measured_us):
        raise CalibrationError(f"{len(predicted_us)} predictions for {len(measured_us)} measurements")
    if len(predicted_us) < MIN_FIT_POINTS:
        raise CalibrationError(f"a linear calibration needs at least {MIN_FIT_POINTS} points")
    if any(m <= 0 or not math.isfinite(m) for m in measured_us) or not all(map(math.isfinite, predicted_us)):
        raise CalibrationError("latencies must be finite and measurements positive")
    # Normal equations of min sum (a * p/m + b * 1/m - 1)^2 over (a, b).
    x = [p / m for p, m in zip(predicted_us, measured_us, strict=True)]
    y = [1.0 / m for m in measured_us]
    sxx, sxy, syy = (
        sum(v * v for v in x),
        sum(u * v for u, v in zip(x, y, strict=True)),
        sum(v * v for v in y),
    )
    sx, sy = sum(x), sum(y)
    determinant = sxx * syy - sxy * sxy
    if abs(determinant) <= 1e-12 * sxx * syy:
        raise CalibrationError("the fit networks all have the same prediction: a line cannot be fitted")
    scale = (sx * syy - sy * sxy) / determinant
    offset_us = (sy * sxx - sx * sxy) / determinant
    return LinearCalibration(scale=scale, offset_us=offset_us, fit_count=len(predicted_us))
