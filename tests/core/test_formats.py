"""The file formats: each is written with its format_version, read back, read without the field (files written
before it existed are version 1), and refused with one line when its version is unknown."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fbnet_core.arch import Architecture
from fbnet_core.errors import FormatError, LutFormatError, UnknownFormatVersionError
from fbnet_core.formats.architecture_file import ArchitectureFile, load_architecture, save_architecture
from fbnet_core.formats.lut_file import median_us_by_key, read_lut_file, write_lut_file
from fbnet_core.formats.ops_manifest import ManifestEntry, read_manifest, write_manifest
from fbnet_core.formats.results import append_results, read_results
from fbnet_core.formats.validation_file import read_validation_file, write_validation_file
from fbnet_core.measurement import MAX_ERROR_CHARS, MeasurementRecord
from fbnet_core.space import SpaceParams

SHA = "0" * 64
RUNTIME = {"runtime": "onnxruntime", "runtime_version": "1.20.0", "extra": {"precision": "fp32"}}
RECORDS = [
    MeasurementRecord("r1", "blk.a", SHA, samples_us=[10.0, 11.5], runtime=RUNTIME),
    MeasurementRecord.failure("r2", "blk.b", SHA, "onnxruntime could not load b.onnx"),
]
ARCH = Architecture(("k3_e6",) * 22)
PARAMS = SpaceParams(resolution=32, width=0.25, num_classes=10, head_channels=64, small_input=True)
LUT = {"server": "http://127.0.0.1:8000", "device": "d", "lut_version": 3, "etag": '"3"', "fetched_at": "now",
       "entries": {"blk.a": {"median_us": 12.5, "n": 3}}}  # fmt: skip
VALIDATION = {"device": "d", "space": "fbnet", "points": [{"name": "fbnet_a", "measured_us": 1.0}], "summary": {}}


def _ops(path: Path) -> Any:
    write_manifest(path, [ManifestEntry("blk.a", {"kind": "block"}, "blk.a.onnx", SHA)])
    return read_manifest(path)


def _results(path: Path) -> Any:
    append_results(path, RECORDS)
    return read_results(path)


def _lut(path: Path) -> Any:
    write_lut_file(path, LUT)
    return read_lut_file(path)


def _validation(path: Path) -> Any:
    write_validation_file(path, VALIDATION)
    return read_validation_file(path)


def _architecture(path: Path) -> Any:
    save_architecture(path, ARCH, PARAMS, predicted_latency_ms=4.5)
    return load_architecture(path)


FORMATS: dict[str, tuple[Callable[[Path], Any], Callable[[Path], Any]]] = {
    "ops.jsonl": (_ops, read_manifest),
    "results.jsonl": (_results, read_results),
    "lut.json": (_lut, read_lut_file),
    "validation.json": (_validation, read_validation_file),
    "arch.json": (_architecture, load_architecture),
}


def _rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to the file's object, or to each line's object of a JSON Lines file."""
    if path.suffix == ".jsonl":
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        for line in lines:
            change(line)
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    else:
        body = json.loads(path.read_text())
        change(body)
        path.write_text(json.dumps(body))


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_is_written_with_version_1_and_read_back(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_and_read, _ = FORMATS[name]
    first = write_and_read(path)
    text = path.read_text()
    objects = [json.loads(line) for line in text.splitlines()] if name.endswith(".jsonl") else [json.loads(text)]
    assert all(body["format_version"] == 1 for body in objects)
    assert "format_version" not in json.dumps(first, default=repr)  # readers hand back the body, not the field
    path.unlink()
    assert write_and_read(path) == first


@pytest.mark.parametrize("name", FORMATS)
def test_a_file_without_format_version_is_read_as_version_1(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_and_read, read = FORMATS[name]
    expected = write_and_read(path)
    _rewrite(path, lambda body: body.pop("format_version"))
    assert read(path) == expected


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("version", [2, "1", None])
def test_an_unknown_version_is_refused_in_one_line_naming_the_file(tmp_path: Path, name: str, version: object) -> None:
    path = tmp_path / name
    write_and_read, read = FORMATS[name]
    write_and_read(path)
    _rewrite(path, lambda body: body.update(format_version=version))
    with pytest.raises(UnknownFormatVersionError) as caught:
        read(path)
    message = str(caught.value)
    assert str(path) in message and f"format_version {version!r}" in message and "reads version 1" in message
    assert "\n" not in message


def test_the_agent_refuses_a_newer_manifest_with_one_line(tmp_path: Path) -> None:
    manifest = tmp_path / "ops.jsonl"
    _ops(manifest)
    _rewrite(manifest, lambda body: body.update(format_version=2))
    result = subprocess.run(
        [sys.executable, "-m", "device_agents", "profile", "--ops", str(manifest), "--out", str(tmp_path / "r.jsonl")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"device-agent: {manifest}:1: format_version 2 is not one this fbnet-lut reads (it reads version 1); "
        "write the file again with this version, or upgrade fbnet-lut"
    ]


def test_a_results_line_that_is_not_a_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"result_id": "r", "key": "k", "onnx_sha256": SHA, "samples_us": [1.0]}) + "\n")
    with pytest.raises(FormatError, match=r"record 1: field 'runtime' must be a JSON object"):
        read_results(path)
    path.write_text(json.dumps({"result_id": "r", "key": "k", "onnx_sha256": SHA, "samples_us": [0.0]}) + "\n")
    with pytest.raises(FormatError, match=r"record 1: field 'samples_us' must be a non-empty list of positive"):
        read_results(path)


def test_a_failure_record_keeps_what_the_server_can_store() -> None:
    record = MeasurementRecord.failure("r", "k", SHA, "x" * (MAX_ERROR_CHARS + 10) + "\x00")
    assert record.is_failure and len(record.error or "") == MAX_ERROR_CHARS and "\x00" not in (record.error or "")
    assert record.to_json() == {"result_id": "r", "key": "k", "onnx_sha256": SHA, "error": record.error}
    with pytest.raises(ValueError, match="either samples_us or error"):
        MeasurementRecord("r", "k", SHA, samples_us=[1.0], runtime={}, error="both")


def test_architecture_file_round_trip_keeps_the_prediction(tmp_path: Path) -> None:
    assert _architecture(tmp_path / "arch.json") == ArchitectureFile(ARCH, PARAMS, 4.5)


def test_lut_body_medians_and_malformed_bodies() -> None:
    body = {"device": "d", "entries": {"a": {"median_us": 12.5, "n": 3}, "b": {"median_us": 4}}}
    assert median_us_by_key(body) == {"a": 12.5, "b": 4.0}
    with pytest.raises(LutFormatError, match="entries"):
        median_us_by_key({"device": "d"})
    with pytest.raises(LutFormatError, match="median_us"):
        median_us_by_key({"entries": {"a": {"p10_us": 1.0}}})


def test_an_ops_manifest_names_each_ops_compiled_files_and_reads_back(tmp_path):
    from fbnet_core.formats.ops_manifest import ManifestEntry, read_manifest, write_manifest

    entries = [
        ManifestEntry("a", {"kind": "block"}, "a.onnx", "1" * 64, {"pte": ("a.pte", "2" * 64)}),
        ManifestEntry("b", {"kind": "block"}, "b.onnx", "3" * 64),
    ]
    write_manifest(tmp_path / "ops.jsonl", entries)
    assert read_manifest(tmp_path / "ops.jsonl") == entries
    assert '"models"' not in (tmp_path / "ops.jsonl").read_text().splitlines()[1]  # ONNX only: the line is as before


def test_an_ops_manifest_with_malformed_models_names_the_line(tmp_path):
    import pytest

    from fbnet_core.errors import FormatError
    from fbnet_core.formats.ops_manifest import read_manifest

    path = tmp_path / "ops.jsonl"
    path.write_text('{"format_version": 1, "key": "a", "spec": {}, "file": "a.onnx", "sha256": "x", "models": {"pte": "a.pte"}}\n')
    with pytest.raises(FormatError, match=r"ops.jsonl:1: field 'models' must map formats"):
        read_manifest(path)
