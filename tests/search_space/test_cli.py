from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from device_agents.manifest import read_ops, verify_files
from fbnet_core.keys import op_key
from search_client.commands.cli import app

runner = CliRunner()
SMALL = ["--resolution", "32", "--small-input", "--num-classes", "10"]


def test_space_json_shows_the_108_entries_of_the_224_space() -> None:
    # The installed entry point, in its own process, as a user runs it.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dnas"), "space", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(result.stderr)
    document = json.loads(result.stdout)
    assert document["space"]["resolution"] == 224
    assert (document["layer_signatures"], document["candidate_entries"], document["identity_skips"]) == (
        12,
        108,
        6,
    )
    assert document["ops"] == len(document["entries"]) == 105
    assert all(op_key(entry["spec"]) == entry["key"] for entry in document["entries"])


def test_space_table_summary() -> None:
    result = runner.invoke(app, ["space", *SMALL])
    assert result.exit_code == 0, result.output
    assert "stem.k3.c3.o16.s1.h32w32" in result.output
    assert "= 105 ops to measure" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["space", "--resolution", "100"], "resolution 100 is not a multiple of 32"),
        # Below 100 px the small-input schedule is the default: its total stride is 8.
        (["space", "--resolution", "36"], "resolution 36 is not a multiple of 8, the small-input schedule"),
        (["space", "--width", "-1"], "width must be a positive number"),
        (["export-ops", "--out", "unused", "--model", "resnet50"], "--model: unknown model 'resnet50'"),
    ],
)
def test_bad_flags_are_one_line_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("dnas: ") and message in line


def test_export_ops_writes_what_the_agent_reads(tmp_path: Path) -> None:
    out = tmp_path / "ops"
    result = runner.invoke(app, ["export-ops", *SMALL, "--out", str(out), "--model", "fbnet_96_035_1"])
    assert result.exit_code == 0, result.output
    ops = read_ops(out / "ops.jsonl")  # the device agent's own reader
    # the space's 105 ops, the 5 whole networks that fit the LUT's prediction, the model asked for
    assert len(ops) == 105 + 5 + 1
    assert [op.spec["kind"] for op in ops[105:]] == ["network"] * 6
    for op in ops:
        verify_files(op)  # sha256 of each file matches its manifest line
        assert op_key(op.spec) == op.key and op.onnx_path.name == f"{op.key}.onnx"
    model = onnx.load(str(ops[1].onnx_path))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == ops[1].spec[
        "input_shape"
    ]

    # A second run rewrites nothing: identical bytes, untouched files.
    mtimes = {path: path.stat().st_mtime_ns for path in out.glob("*.onnx")}
    manifest = (out / "ops.jsonl").read_text()
    assert (
        runner.invoke(app, ["export-ops", *SMALL, "--out", str(out), "--model", "fbnet_96_035_1"]).exit_code
        == 0
    )
    assert {path: path.stat().st_mtime_ns for path in out.glob("*.onnx")} == mtimes
    assert (out / "ops.jsonl").read_text() == manifest


def test_export_ops_into_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = runner.invoke(app, ["export-ops", *SMALL, "--out", str(blocker)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"dnas: --out: cannot write to {blocker}")


def test_models_json_lists_the_zoo_with_counts() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert len(rows) == 9
    assert rows["fbnet_96_035_1"]["resolution"] == 96
    assert rows["fbnet_a"]["paper"]["madds_m"] == 249
    assert abs(rows["fbnet_a"]["madds"] / 1e6 - 249) / 249 < 0.02


def test_models_per_layer_adds_up() -> None:
    result = runner.invoke(app, ["models", "--model", "fbnet_a", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [layer["name"] for layer in document["layers"]][:2] == ["stem", "layers.0"]
    assert len(document["layers"]) == 1 + 22 + 2
    assert sum(layer["madds"] for layer in document["layers"]) == document["madds"]
    assert document["layers"][1]["params"] == 0, "FBNet-A's first layer is an identity skip"
    bad = runner.invoke(app, ["models", "--model", "fbnet_z"])
    assert bad.exit_code == 2 and "unknown model 'fbnet_z'" in bad.stderr
