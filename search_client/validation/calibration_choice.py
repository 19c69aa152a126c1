"""Which calibration to use on a device: the one that predicts left-out fit networks best.

The candidates are the linear map of the summed prediction and the per-block-kind scales
(calibration_kinds.py). Each is judged by leave-one-out on the *fit* split only: fitted on all fit networks but
one, it predicts that one; the candidate with the lower mean absolute percentage error is then fitted on every
fit network. The holdout split is never seen, so its figures stay honest. With too few fit networks for the
per-kind fit (it has 4 coefficients), the linear map is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from search_client.validation.calibration import CalibrationError, fit_linear
from search_client.validation.calibration_kinds import fit_kinds, min_fit_points

LINEAR = "linear"
PER_BLOCK_KIND = "per_block_kind"


class Calibration(Protocol):
    fit_count: int

    def calibrate_us(self, predicted_us: float, by_kind_us: Mapping[str, float]) -> float: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class FitNetwork:
    """What a calibration is fitted on: the LUT's sum, the same sum per block kind, the measurement."""

    predicted_us: float
    by_kind_us: Mapping[str, float]
    measured_us: float


Fitter = Callable[[Sequence[FitNetwork]], Calibration]


def _fit_linear(networks: Sequence[FitNetwork]) -> Calibration:
    return fit_linear([n.predicted_us for n in networks], [n.measured_us for n in networks])


def _fit_kinds(networks: Sequence[FitNetwork]) -> Calibration:
    return fit_kinds([n.by_kind_us for n in networks], [n.measured_us for n in networks])


def leave_one_out_mape_pct(networks: Sequence[FitNetwork], fitter: Fitter) -> float:
    errors = []
    for index, left_out in enumerate(networks):
        calibration = fitter([*networks[:index], *networks[index + 1 :]])
        predicted_us = calibration.calibrate_us(left_out.predicted_us, left_out.by_kind_us)
        errors.append(abs(predicted_us - left_out.measured_us) / left_out.measured_us)
    return 100.0 * sum(errors) / len(errors)


@dataclass(frozen=True)
class CalibrationChoice:
    calibration: Calibration
    loo_mape_pct: dict[str, float]  # per candidate, on the fit split

    def calibrate_us(self, predicted_us: float, by_kind_us: Mapping[str, float]) -> float:
        return self.calibration.calibrate_us(predicted_us, by_kind_us)

    def to_json(self) -> dict[str, Any]:
        return {**self.calibration.to_json(), "leave_one_out_mape_pct_on_fit": self.loo_mape_pct}


def choose_calibration(networks: Sequence[FitNetwork]) -> CalibrationChoice:
    """The candidate with the lower leave-one-out MAPE over `networks` (the fit split), fitted on all of them."""
    if len(networks) <= min_fit_points():  # leave-one-out would leave too few for the per-kind fit: no choice
        return CalibrationChoice(_fit_linear(networks), {})
    loo = {LINEAR: leave_one_out_mape_pct(networks, _fit_linear)}
    try:
        loo[PER_BLOCK_KIND] = leave_one_out_mape_pct(networks, _fit_kinds)
    except CalibrationError:  # e.g. no fit network uses some kind: its scale cannot be fitted
        pass
    best = min(loo, key=loo.__getitem__)
    fitter = _fit_kinds if best == PER_BLOCK_KIND else _fit_linear
    return CalibrationChoice(fitter(networks), {name: round(value, 3) for name, value in loo.items()})
