"""Geometry and colours for the dashboard's server-rendered charts: pure functions, no HTML.

The templates turn these plain values into SVG and table cells (jinja2 autoescapes every string in them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fbnet_core.keys import parse_block_key

# A perceptually ordered sequential scale (viridis' endpoints and three inner stops): fast = light, slow = dark.
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (253, 231, 37),
    (94, 201, 98),
    (33, 145, 140),
    (59, 82, 139),
    (68, 1, 84),
)


def colour_at(t: float) -> str:
    """`t` in [0, 1] -> '#rrggbb' on the palette (linear interpolation between its stops)."""
    t = min(1.0, max(0.0, t))
    position = t * (len(_PALETTE) - 1)
    i = min(int(position), len(_PALETTE) - 2)
    frac = position - i
    rgb = (round(a + (b - a) * frac) for a, b in zip(_PALETTE[i], _PALETTE[i + 1], strict=True))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def text_colour_for(background: str) -> str:
    """Dark text on light cells, white on dark ones (relative luminance, ITU-R BT.709 weights)."""
    r, g, b = (int(background[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return "#111827" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "#ffffff"


def format_us(value_us: float | None) -> str:
    """812.4 -> '812 µs', 1234.5 -> '1.23 ms', 23100 -> '23.1 ms' (three significant figures)."""
    if value_us is None:
        return "-"
    if value_us < 1000:
        return f"{value_us:.3g} µs"
    return f"{value_us / 1000:.3g} ms"


@dataclass(frozen=True, slots=True)
class HeatCell:
    """One (layer, candidate) cell: state is measured, identity, queued, leased, failed or missing."""

    key: str | None
    state: str
    median_us: float | None = None
    background: str | None = None
    foreground: str | None = None

    @property
    def label(self) -> str:
        if self.state == "measured":
            return format_us(self.median_us)
        return {"identity": "identity", "queued": "queued", "leased": "running", "failed": "failed"}.get(
            self.state, "missing"
        )


def heat_map(
    layers: Sequence[Sequence[str | None]],
    median_us: Mapping[str, float],
    pending: Mapping[str, str],
) -> list[list[HeatCell]]:
    """Cells coloured by log(median latency), scaled over the measured cells of this map.

    `pending` maps keys without a measurement to their task state (queued, leased or failed).
    Log scale: a space spans two to three decades (a 1x1 skip at 7x7 vs a k5_e6 block at 112x112).
    """
    measured = [median_us[k] for layer in layers for k in layer if k is not None and k in median_us]
    low = math.log(min(measured)) if measured else 0.0
    span = (math.log(max(measured)) - low) if measured else 0.0
    grid: list[list[HeatCell]] = []
    for layer in layers:
        row: list[HeatCell] = []
        for key in layer:
            if key is None:
                row.append(HeatCell(None, "identity"))
            elif key in median_us:
                value = median_us[key]
                background = colour_at((math.log(value) - low) / span if span > 0 else 0.5)
                row.append(HeatCell(key, "measured", value, background, text_colour_for(background)))
            else:
                row.append(HeatCell(key, pending.get(key, "missing")))
        grid.append(row)
    return grid


def layer_shape(keys: Sequence[str | None]) -> str:
    """'16→24 · s2 · 112×112' from a layer's block keys (all share the layer's shape); '' if none is a block key."""
    for key in keys:
        block = parse_block_key(key) if key is not None else None
        if block is not None:
            height, width = block.input_hw
            return f"{block.in_channels}→{block.out_channels} · s{block.stride} · {height}×{width}"
    return ""


def legend_stops(count: int = 6) -> list[str]:
    return [colour_at(i / (count - 1)) for i in range(count)]


def nice_ticks(maximum: float, target: int = 5) -> list[float]:
    """Round tick values 0, step, 2*step, ... <= maximum, with step 1, 2 or 5 times a power of ten."""
    if maximum <= 0:
        return [0.0]
    raw = maximum / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(maximum / step + 1e-9) + 1)]


@dataclass(frozen=True, slots=True)
class ScatterPoint:
    x: float
    y: float
    name: str
    kind: str
    holdout: bool
    title: str


@dataclass(frozen=True, slots=True)
class Scatter:
    """A predicted-vs-measured plot in SVG user units; axes in milliseconds from 0 to `axis_max_ms`."""

    size: int
    margin: int
    axis_max_ms: float
    ticks: list[tuple[float, float, str]]  # (x or y position along the axis, value, label)
    points: list[ScatterPoint]
    band_polygon: str  # the +-10% band around the diagonal

    @property
    def plot_end(self) -> int:
        return self.size - self.margin // 3


def scatter(points: Sequence[Mapping[str, object]], size: int = 360, margin: int = 52) -> Scatter:
    """Measured latency on x, predicted on y, both in ms; a point on the diagonal is a perfect prediction."""
    measured_ms = [float(p["measured_us"]) / 1000 for p in points]  # type: ignore[arg-type]
    predicted_ms = [float(p["predicted_us"]) / 1000 for p in points]  # type: ignore[arg-type]
    top = max([*measured_ms, *predicted_ms, 1e-3]) * 1.08
    ticks_ms = nice_ticks(top)
    axis_max = max(top, ticks_ms[-1])
    length = size - margin - margin // 3

    def along(value_ms: float) -> float:
        return value_ms / axis_max * length

    def x_of(value_ms: float) -> float:
        return round(margin + along(value_ms), 2)

    def y_of(value_ms: float) -> float:
        return round(size - margin - along(value_ms), 2)

    # Between y = 0.9x and y = 1.1x; the upper edge leaves the square plot at x = max / 1.1.
    band = [(0.0, 0.0), (axis_max / 1.1, axis_max), (axis_max, axis_max), (axis_max, axis_max * 0.9)]
    polygon = " ".join(f"{x_of(x)},{y_of(y)}" for x, y in band)
    plotted = [
        ScatterPoint(
            x=x_of(m),
            y=y_of(p),
            name=str(point["name"]),
            kind=str(point["kind"]),
            holdout=point.get("split") == "holdout",
            title=(
                f"{point['name']} ({point['kind']}): predicted {p:.3g} ms, measured {m:.3g} ms, "
                f"error {100 * (p - m) / m:+.1f}%"
            ),
        )
        for point, m, p in zip(points, measured_ms, predicted_ms, strict=True)
    ]
    return Scatter(
        size=size,
        margin=margin,
        axis_max_ms=axis_max,
        ticks=[(along(t), t, f"{t:g}") for t in ticks_ms],
        points=plotted,
        band_polygon=polygon,
    )
