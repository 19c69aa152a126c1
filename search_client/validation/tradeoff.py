"""Client figures after the paper: accuracy against measured latency per device, and an architecture as blocks.

Trade-off points are data (`TradeoffPoint`, JSON list), so any run that measured a latency and an accuracy on
the *same* data set can be plotted; mixing accuracies from different data sets on one axis would be wrong, so
every point names its data set and the plot refuses to mix them. The architecture drawing is one box per
searchable layer: width by expansion, colour by kernel size, hatched when grouped, a thin line for `skip`.
Matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot is imported)
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from fbnet_core.arch import Architecture  # noqa: E402
from fbnet_core.blocks import get_block_spec  # noqa: E402
from fbnet_core.space import FBNET_STAGES  # noqa: E402
from search_client.errors import SearchClientError  # noqa: E402

GROUP_STYLE = {"zoo": ("s", "tab:red"), "searched": ("o", "tab:blue")}
KERNEL_COLOURS = {3: "tab:orange", 5: "tab:purple"}
SKIP_COLOUR = "lightgrey"


class TradeoffInputError(SearchClientError, ValueError):
    """A trade-off points file that is not a list of valid points, or points from different data sets."""


@dataclass(frozen=True)
class TradeoffPoint:
    name: str
    group: str  # "zoo" or "searched"
    device: str
    latency_ms: float
    top1_pct: float
    dataset: str  # what top1_pct was measured on: points of different data sets are never plotted together

    @classmethod
    def from_json(cls, data: Any) -> TradeoffPoint:
        if not isinstance(data, dict):
            raise TradeoffInputError(f"a trade-off point must be a JSON object, got {data!r}")
        fields = {name: data.get(name) for name in cls.__dataclass_fields__}
        missing = sorted(name for name, value in fields.items() if value is None)
        if missing:
            raise TradeoffInputError(f"trade-off point {data.get('name')!r} is missing {missing}")
        if fields["group"] not in GROUP_STYLE:
            raise TradeoffInputError(f"'group' must be one of {sorted(GROUP_STYLE)}, got {fields['group']!r}")
        for name in ("latency_ms", "top1_pct"):
            value = fields[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise TradeoffInputError(f"{name!r} of {fields['name']!r} must be a number, got {value!r}")
        if fields["latency_ms"] <= 0:
            raise TradeoffInputError(f"'latency_ms' of {fields['name']!r} must be positive")
        return cls(**fields)


def read_points(path: Path) -> list[TradeoffPoint]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TradeoffInputError(f"cannot read trade-off points {path}: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise TradeoffInputError(f"{path}: expected a non-empty JSON list of points")
    return [TradeoffPoint.from_json(item) for item in data]


def write_points(path: Path, points: Sequence[TradeoffPoint]) -> None:
    path.write_text(json.dumps([asdict(point) for point in points], indent=1) + "\n")


def plot_tradeoff(points: Sequence[TradeoffPoint], path: Path, title: str) -> Path:
    """One panel per device: top-1 against measured latency, zoo and searched networks labelled."""
    datasets = sorted({point.dataset for point in points})
    if len(datasets) != 1:
        raise TradeoffInputError(f"points from different data sets cannot share an accuracy axis: {datasets}")
    devices = sorted({point.device for point in points})
    figure, panels = plt.subplots(1, len(devices), figsize=(5.0 * len(devices), 4.2), dpi=120, squeeze=False)
    for axes, device in zip(panels[0], devices, strict=True):
        for group, (marker, colour) in GROUP_STYLE.items():
            chosen = [p for p in points if p.device == device and p.group == group]
            axes.scatter([p.latency_ms for p in chosen], [p.top1_pct for p in chosen], marker=marker,
                         color=colour, label=group, zorder=3)  # fmt: skip
            for point in chosen:
                axes.annotate(point.name, (point.latency_ms, point.top1_pct), textcoords="offset points",
                              xytext=(4, 4), fontsize=8)  # fmt: skip
        axes.set_title(device, fontsize=10)
        axes.set_xlabel(f"latency measured on {device}, ms")
        axes.set_ylabel(f"top-1 on {datasets[0]}, %")
        axes.grid(True, linewidth=0.3)
        axes.legend(fontsize=8, loc="best")
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return _save(figure, path)


def _stage_bounds() -> list[int]:
    """Index of the first layer of each stage after the first (where the drawing puts a gap)."""
    bounds, first = [], 0
    for _, count, _ in FBNET_STAGES[:-1]:
        first += count
        bounds.append(first)
    return bounds


def plot_architecture(arch: Architecture, path: Path, title: str) -> Path:
    """The 22 searchable layers left to right, one box per block: height by expansion, colour by kernel."""
    figure, axes = plt.subplots(figsize=(12.0, 2.6), dpi=120)
    gaps = set(_stage_bounds())
    x = 0.0
    for index, name in enumerate(arch.blocks):
        if index in gaps:
            x += 0.4
        spec = get_block_spec(name)
        if spec.is_skip:
            axes.add_patch(Rectangle((x, -0.1), 0.8, 0.2, color=SKIP_COLOUR))
        else:
            height = spec.expansion / 3.0
            axes.add_patch(Rectangle((x, -height / 2), 0.8, height, facecolor=KERNEL_COLOURS[spec.kernel_size],
                                     hatch="//" if spec.groups > 1 else None, edgecolor="black", linewidth=0.5))  # fmt: skip
        axes.text(x + 0.4, -1.25, name, rotation=90, ha="center", va="top", fontsize=7)
        x += 1.0
    axes.set_xlim(-0.2, x)
    axes.set_ylim(-2.6, 1.8)  # headroom above the tallest (e6) box for the legend
    axes.axis("off")
    legend = [Patch(color=KERNEL_COLOURS[3], label="3x3"), Patch(color=KERNEL_COLOURS[5], label="5x5"),
              Patch(color=SKIP_COLOUR, label="skip"), Patch(facecolor="white", edgecolor="black", hatch="//",
              label="grouped 1x1 (g2)")]  # fmt: skip
    axes.legend(handles=legend, loc="upper center", fontsize=7, ncol=4, frameon=False)
    axes.set_title(f"{title}  (box height ~ expansion; stages separated by gaps)", fontsize=9)
    figure.tight_layout()
    return _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
