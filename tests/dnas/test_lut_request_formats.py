"""`dnas lut request` for devices of other formats: the ops compiled for the device's runtime (inferred from its
registration) and uploaded beside their ONNX files, against a real server; bad formats as one-line errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fbnet_core.keys import ops_for_space
from fbnet_core.space import fbnet_space
from search_client.errors import FormatMismatchError
from search_client.lut.client import request_lut
from search_client.space.compile import compile_op

DNAS = str(Path(sys.executable).parent / "dnas")
OPS = {op.key: op for op in ops_for_space(fbnet_space(resolution=32, small_input=True, num_classes=10))}
# Two small ops (the pool + classifier, and a 1-expansion block): quick to compile.
CHOSEN = [op for key, op in OPS.items() if key.startswith(("poolfc.", "blk.k3_e1.c16.o16.s1"))]


def test_request_compiles_the_ops_for_the_registered_format_and_queues_them(live_server, unique_name):
    assert len(CHOSEN) == 2
    admin = live_server.client(live_server.admin_token)
    name = unique_name("pixel")
    live_server.client(live_server.enroll_token).register_device(name, "android-arm64", {}, "executorch")
    report = request_lut(admin, name, CHOSEN)  # no format given: the device's
    assert (report.model_format, report.compiled, report.queued) == ("pte", 2, 2)
    for op in CHOSEN:
        served = admin.get_op_model(op.key, "pte")
        assert served == compile_op(op.spec, "pte")  # the deterministic compilation, byte for byte
        assert admin.get_op(op.key)["formats"]["pte"] == hashlib.sha256(served).hexdigest()
    again = request_lut(admin, name, CHOSEN)
    assert (again.compiled, again.queued, again.already_queued) == (0, 0, 2)  # nothing compiled twice


def test_request_with_a_format_the_device_did_not_register_is_refused(live_server, unique_name):
    admin = live_server.client(live_server.admin_token)
    name = unique_name("cpu")
    live_server.client(live_server.enroll_token).register_device(name, "linux", {})
    with pytest.raises(FormatMismatchError, match=r"registered the onnx format, not pte"):
        request_lut(admin, name, CHOSEN, "pte")


@pytest.mark.parametrize(
    "argv",
    [
        ["export-ops", "--format", "caffe2", "--out", "{tmp}/ops"],
        ["export", "--model", "fbnet_a", "--format", "caffe2", "-o", "{tmp}/net.bin"],
    ],
)
def test_an_unknown_format_is_a_one_line_error(argv, tmp_path):
    command = [DNAS, *(a.format(tmp=tmp_path) for a in argv)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2
    assert "unknown model format 'caffe2'; one of onnx, pte, tflite" in result.stderr
    assert "Traceback" not in result.stderr


def test_tflite_without_the_converter_is_a_one_line_error_naming_the_setup_script(tmp_path):
    env = {**os.environ, "FBNET_LITERT_PYTHON": str(tmp_path / "missing-python")}
    command = [DNAS, "export", "--model", "fbnet_a", "--format", "tflite", "-o", str(tmp_path / "net.tflite")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, env=env)
    assert result.returncode == 2
    assert "scripts/setup-litert-converter.sh" in result.stderr and "Traceback" not in result.stderr
