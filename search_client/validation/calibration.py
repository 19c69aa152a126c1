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
from collections.abc import Mapping, Sequence
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

    def calibrate_us(self, predicted_us: float, by_kind_us: Mapping[str, float]) -> float:
        """The common signature of calibrations (calibration_choice.Calibration); a line needs only the sum."""
        return self.apply_us(predicted_us)

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


def relative_least_squares(
    rows: Sequence[Sequence[float]], measured_us: Sequence[float], known_us: Sequence[float] | None = None
) -> list[float]:
    """Coefficients c minimising sum_i ((rows_i . c + known_i - m_i) / m_i)^2: least squares of the relative
    error, the quantity the fidelity metrics report (a small network weighs as much as a large one). `known_us`
    is a part of each prediction that is not fitted (0 by default)."""
    known = [0.0] * len(rows) if known_us is None else list(known_us)
    if len(rows) != len(measured_us) or len(known) != len(rows):
        raise CalibrationError(f"{len(rows)} predictions for {len(measured_us)} measurements")
    predictions = [*known, *(v for row in rows for v in row)]
    if any(m <= 0 or not math.isfinite(m) for m in measured_us) or not all(map(math.isfinite, predictions)):
        raise CalibrationError("latencies must be finite and measurements positive")
    import numpy as np  # here, not at the top: `dnas --help` imports this module for its defaults

    weighted = np.asarray(rows, dtype=np.float64) / np.asarray(measured_us, dtype=np.float64)[:, None]
    if np.linalg.matrix_rank(weighted) < weighted.shape[1]:
        raise CalibrationError("the fit networks do not vary enough to fit every coefficient")
    target = 1.0 - np.asarray(known, dtype=np.float64) / np.asarray(measured_us, dtype=np.float64)
    coefficients, *_ = np.linalg.lstsq(weighted, target, rcond=None)
    return [float(c) for c in coefficients]


def fit_linear(predicted_us: Sequence[float], measured_us: Sequence[float]) -> LinearCalibration:
    """scale and offset by least squares of (scale * p + offset - m) / m."""
    if len(predicted_us) < MIN_FIT_POINTS:
        raise CalibrationError(f"a linear calibration needs at least {MIN_FIT_POINTS} points")
    if len(predicted_us) == len(measured_us) and len(set(predicted_us)) < 2:
        raise CalibrationError("the fit networks all have the same prediction: a line cannot be fitted")
    scale, offset_us = relative_least_squares([[p, 1.0] for p in predicted_us], measured_us)
    return LinearCalibration(scale=scale, offset_us=offset_us, fit_count=len(predicted_us))
