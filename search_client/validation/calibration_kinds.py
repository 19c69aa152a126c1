"""A per-block-kind calibration: each kind of block gets its own scale, fitted on the fit split only.

Why: the LUT's error is not one scale. Profiled inside whole networks with onnxruntime's profiler
(bench/bench_block_context.py), ops run at different ratios of their standalone time: the classifier (8 MB of
weights, evicted by the rest of the network) 1.3 - 1.8x in every profile, small blocks (expansion 1, grouped,
skip projections) often below 1x (a standalone op pays a session run and layout reorders a network pays once),
the others either way. Errors of opposite sign that depend on the architecture's mix of blocks are not undone by
a single line, and a monotone map cannot reorder networks; a scale per kind can do both.

    calibrated_us = fixed_us + sum_k scale_k * blocks_k_us + offset_us

over the kinds `e1` (expansion 1, grouped or not, and skip projections), `e3` and `e6`; the stem, head and
classifier (`fixed`, the same in every network of a space) keep their LUT values and the offset absorbs their
error. Fitted by least squares of the relative error, like the linear calibration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fbnet_core.blocks import BLOCKS
from fbnet_core.keys import Op
from search_client.validation.calibration import CalibrationError, relative_least_squares

FIXED = "fixed"
BLOCK_KINDS = ("e1", "e3", "e6")
MIN_POINTS_PER_COEFFICIENT = 3  # fewer, and the fit follows the noise of the fit networks


def op_kind(op: Op) -> str:
    """`fixed` for the stem, head and classifier; a block's kind by its expansion (skip projections: `e1`)."""
    if op.spec["kind"] != "block":
        return FIXED
    expansion = BLOCKS[op.spec["block"]].expansion
    return f"e{expansion or 1}"


def latency_by_kind_us(breakdown: Sequence[tuple[Op, float]]) -> dict[str, float]:
    """The LUT latencies of one network's ops, summed per kind (every kind present, 0 when unused)."""
    sums = dict.fromkeys((FIXED, *BLOCK_KINDS), 0.0)
    for op, latency_us in breakdown:
        sums[op_kind(op)] += latency_us
    return sums


@dataclass(frozen=True)
class KindCalibration:
    scales: dict[str, float]
    offset_us: float
    fit_count: int

    def apply_us(self, by_kind_us: Mapping[str, float]) -> float:
        blocks_us = sum(scale * by_kind_us[kind] for kind, scale in self.scales.items())
        return by_kind_us[FIXED] + blocks_us + self.offset_us

    def calibrate_us(self, predicted_us: float, by_kind_us: Mapping[str, float]) -> float:
        """The common signature of calibrations (calibration_choice.Calibration); the sum is not needed."""
        return self.apply_us(by_kind_us)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "per_block_kind", "scales": self.scales, "offset_us": self.offset_us,
                "fit_count": self.fit_count}  # fmt: skip


def min_fit_points() -> int:
    return MIN_POINTS_PER_COEFFICIENT * (len(BLOCK_KINDS) + 1)


def fit_kinds(by_kind_us: Sequence[Mapping[str, float]], measured_us: Sequence[float]) -> KindCalibration:
    """Least squares of (fixed + sum_k scale_k * blocks_k + offset - m) / m over the fit networks."""
    if len(by_kind_us) < min_fit_points():
        raise CalibrationError(
            f"a per-kind calibration needs at least {min_fit_points()} fit networks, got {len(by_kind_us)}"
        )
    if len(by_kind_us) != len(measured_us):
        raise CalibrationError(f"{len(by_kind_us)} predictions for {len(measured_us)} measurements")
    rows = [[sums[kind] for kind in BLOCK_KINDS] + [1.0] for sums in by_kind_us]
    fixed_us = [sums[FIXED] for sums in by_kind_us]  # the fixed ops keep scale 1
    *scales, offset_us = relative_least_squares(rows, measured_us, fixed_us)
    return KindCalibration(dict(zip(BLOCK_KINDS, scales, strict=True)), offset_us, len(by_kind_us))
