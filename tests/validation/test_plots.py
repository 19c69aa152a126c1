"""Client figures: the trade-off plot and the architecture drawing, through the `dnas plot` CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fbnet_core.formats.architecture_file import save_architecture
from search_client.commands.cli import app
from search_client.space.zoo import get_model
from search_client.validation.tradeoff import (
    TradeoffInputError,
    TradeoffPoint,
    plot_tradeoff,
    read_points,
    write_points,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _point(name: str, device: str, group: str = "searched", dataset: str = "digits") -> TradeoffPoint:
    return TradeoffPoint(name, group, device, latency_ms=2.5, top1_pct=91.0, dataset=dataset)


def test_tradeoff_points_round_trip_and_plot_one_panel_per_device(tmp_path):
    points = [
        _point("fbnet_a", "cpu-t1", "zoo"),
        _point("searched_t1", "cpu-t1"),
        _point("searched_t1", "cpu-t2"),
    ]
    write_points(tmp_path / "points.json", points)
    assert read_points(tmp_path / "points.json") == points
    result = CliRunner().invoke(
        app, ["plot", "tradeoff", "--points", str(tmp_path / "points.json"), "-o", str(tmp_path / "t.png")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t.png").read_bytes().startswith(PNG_MAGIC)


def test_tradeoff_refuses_accuracies_from_different_data_sets(tmp_path):
    with pytest.raises(TradeoffInputError, match="different data sets"):
        plot_tradeoff([_point("a", "d"), _point("b", "d", dataset="imagenet")], tmp_path / "t.png", "t")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "non-empty JSON list"),
        ("{", "cannot read"),
        ('[{"name": "a"}]', "missing"),
        (
            '[{"name": "a", "group": "x", "device": "d", "latency_ms": 1, "top1_pct": 1, "dataset": "s"}]',
            "group",
        ),
        (
            '[{"name": "a", "group": "zoo", "device": "d", "latency_ms": 0, "top1_pct": 1, "dataset": "s"}]',
            "positive",
        ),
        (
            '[{"name": "a", "group": "zoo", "device": "d", "latency_ms": "1", "top1_pct": 1, "dataset": "s"}]',
            "number",
        ),
    ],
)
def test_bad_points_file_is_a_one_line_cli_error(tmp_path, content, message):
    (tmp_path / "points.json").write_text(content)
    result = CliRunner().invoke(
        app, ["plot", "tradeoff", "--points", str(tmp_path / "points.json"), "-o", str(tmp_path / "t.png")]
    )
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t.png").exists()


def test_architecture_drawing_from_an_architecture_file(tmp_path):
    entry = get_model("fbnet_b")
    save_architecture(tmp_path / "arch.json", entry.arch, entry.params)
    result = CliRunner().invoke(
        app, ["plot", "arch", "--arch", str(tmp_path / "arch.json"), "-o", str(tmp_path / "a.png")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a.png").read_bytes().startswith(PNG_MAGIC)


def test_architecture_drawing_refuses_a_bad_file(tmp_path):
    (tmp_path / "arch.json").write_text(json.dumps({"blocks": ["k3_e1"] * 3}))
    result = CliRunner().invoke(
        app, ["plot", "arch", "--arch", str(tmp_path / "arch.json"), "-o", str(tmp_path / "a.png")]
    )
    assert result.exit_code == 2
    assert "22 blocks" in result.stderr
