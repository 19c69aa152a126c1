"""The dashboard's chart geometry and colour scale (pure functions)."""

from __future__ import annotations

import pytest

from profiler_server.dashboard.charts import (
    colour_at,
    format_us,
    heat_map,
    layer_shape,
    nice_ticks,
    scatter,
    text_colour_for,
)


def test_colour_scale_endpoints_and_text_contrast():
    assert colour_at(0.0) == "#fde725" and colour_at(1.0) == "#440154"
    assert colour_at(-3) == colour_at(0.0) and colour_at(7) == colour_at(1.0)
    assert text_colour_for("#fde725") == "#111827" and text_colour_for("#440154") == "#ffffff"


@pytest.mark.parametrize(("value", "text"), [(812.4, "812 µs"), (1234.5, "1.23 ms"), (23100.0, "23.1 ms"),
                                              (None, "-")])  # fmt: skip
def test_format_us(value, text):
    assert format_us(value) == text


def test_nice_ticks():
    assert nice_ticks(43.2) == [0, 10, 20, 30, 40]
    assert nice_ticks(0.9) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    assert nice_ticks(0) == [0.0]


def test_heat_map_states_and_log_scale():
    grid = heat_map(
        [["a", "b", None], ["c", "d", "a"]], {"a": 10.0, "b": 100.0, "c": 1000.0}, {"d": "failed"}
    )
    assert [[c.state for c in row] for row in grid] == [
        ["measured", "measured", "identity"],
        ["measured", "failed", "measured"],
    ]
    # log scale: 100 us is halfway between 10 and 1000
    assert grid[0][0].background == colour_at(0) and grid[1][0].background == colour_at(1)
    assert grid[0][1].background == colour_at(0.5)
    assert grid[1][1].label == "failed" and grid[0][2].label == "identity"


def test_scatter_places_a_perfect_prediction_on_the_diagonal():
    sc = scatter([{"name": "n", "kind": "zoo", "predicted_us": 20_000.0, "measured_us": 20_000.0},
                  {"name": "m", "kind": "random", "predicted_us": 30_000.0, "measured_us": 40_000.0,
                   "split": "holdout"}])  # fmt: skip
    first, second = sc.points
    bottom = sc.size - sc.margin
    assert first.x - sc.margin == pytest.approx(bottom - first.y)  # x == y in data units
    assert second.holdout and not first.holdout
    assert "error -25.0%" in second.title
    assert sc.axis_max_ms >= 40 * 1.08


def test_layer_shape_from_the_first_block_key():
    assert layer_shape([None, "blk.k3_e6.c16.o24.s2.h112w112"]) == "16→24 · s2 · 112×112"
    assert layer_shape(["not-a-block", None]) == ""
