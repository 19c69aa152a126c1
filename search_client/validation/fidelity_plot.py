"""The validation scatter plot: LUT-sum prediction against end-to-end measurement, one dot per network.

The diagonal is a perfect prediction; the shaded band is +-10 %. Zoo networks are labelled. With a calibration,
the held-out networks appear a second time at their calibrated prediction, so its effect is visible.
Matplotlib's Agg backend: no display needed, the same PNG on any machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot is imported)

from search_client.validation.calibration import HOLDOUT  # noqa: E402
from search_client.validation.validate import ValidationPoint  # noqa: E402

US_PER_MS = 1000.0
BAND_PCT = 10.0


def plot_validation_scatter(
    points: Sequence[ValidationPoint],
    path: Path,
    title: str,
    calibrated_us: Mapping[str, float] | None = None,
) -> Path:
    """`calibrated_us`: the held-out networks' calibrated predictions, by name (validate.calibrated_us)."""
    predicted = [p for p in points if p.predicted_us is not None]
    figure, axes = plt.subplots(figsize=(6.0, 6.0), dpi=120)
    held_out = [p for p in predicted if p.split == HOLDOUT and p.name in (calibrated_us or {})]
    calibrated_ms = [(calibrated_us or {})[p.name] / US_PER_MS for p in held_out]
    values_ms = [
        *(p.measured_us / US_PER_MS for p in predicted),
        *((p.predicted_us or 0.0) / US_PER_MS for p in predicted),
        *calibrated_ms,
    ]
    low, high = min(values_ms) * 0.9, max(values_ms) * 1.1
    diagonal = [low, high]
    axes.plot(diagonal, diagonal, color="black", linewidth=1, label="prediction = measurement")
    axes.fill_between(
        diagonal,
        [v * (1 - BAND_PCT / 100) for v in diagonal],
        [v * (1 + BAND_PCT / 100) for v in diagonal],
        color="grey",
        alpha=0.2,
        label=f"+-{BAND_PCT:g} %",
    )
    kinds = (
        ("random", "o", "tab:blue"),
        ("cheap", "v", "tab:green"),
        ("expensive", "^", "tab:purple"),
        ("zoo", "s", "tab:red"),
    )
    for kind, marker, color in kinds:
        chosen = [p for p in predicted if p.kind == kind]
        if not chosen:
            continue
        axes.scatter(
            [(p.predicted_us or 0.0) / US_PER_MS for p in chosen],
            [p.measured_us / US_PER_MS for p in chosen],
            marker=marker,
            color=color,
            label=f"{kind} (LUT prediction)",
            zorder=3,
        )
        if kind == "zoo":
            for point in chosen:
                axes.annotate(
                    point.name,
                    ((point.predicted_us or 0.0) / US_PER_MS, point.measured_us / US_PER_MS),
                    textcoords="offset points",
                    xytext=(4, -10),
                    fontsize=8,
                )
    if held_out:
        axes.scatter(
            calibrated_ms,
            [p.measured_us / US_PER_MS for p in held_out],
            marker="x",
            color="tab:green",
            label="held out, calibrated",
            zorder=4,
        )
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_xlabel("predicted latency (sum of LUT medians), ms")
    axes.set_ylabel("measured latency (whole network, median), ms")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(True, linewidth=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
