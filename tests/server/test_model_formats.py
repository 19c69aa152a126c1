"""An op in several formats (ONNX, .pte, .tflite) and devices that declare their runtime and format, against a
real server on SQLite and PostgreSQL. The compiled files are real ones (tests/search_space/data/)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from fbnet_core.client import BadRequestError, ConflictError, NotFoundError, OpUpload
from profiler_server.example_ops import op_upload
from tests.server.helpers import sha256

DATA = Path(__file__).parents[1] / "search_space" / "data"
PTE = (DATA / "blk.k3_e6.c16.o16.s1.h32w32.pte").read_bytes()
TFLITE = (DATA / "blk.k3_e6.c16.o16.s1.h32w32.tflite").read_bytes()
OTHER_TFLITE = (DATA / "blk.k5_e1_g2.c16.o16.s1.h32w32.tflite").read_bytes()


def _register(server, name: str, runtime: str, model_format: str | None = None):
    return server.client(server.enroll_token).register_device(name, "android-arm64", {}, runtime, model_format)


def test_a_device_declares_its_runtime_and_gets_that_runtimes_format(live_server, unique_name):
    admin = live_server.client(live_server.admin_token)
    names = {runtime: unique_name(runtime) for runtime in ("onnxruntime", "executorch", "litert")}
    for runtime, name in names.items():
        _register(live_server, name, runtime)
    explicit = unique_name("custom")
    _register(live_server, explicit, "my-runtime", "tflite")
    listed = {d.name: (d.runtime, d.format) for d in admin.list_devices()}
    assert listed[names["onnxruntime"]] == ("onnxruntime", "onnx")
    assert listed[names["executorch"]] == ("executorch", "pte")
    assert listed[names["litert"]] == ("litert", "tflite")
    assert listed[explicit] == ("my-runtime", "tflite")
    assert admin.get_device(names["executorch"]).format == "pte"


def test_a_runtime_without_a_default_format_must_state_one(live_server, unique_name):
    with pytest.raises(BadRequestError, match="runtime 'my-runtime' has no default model format") as caught:
        _register(live_server, unique_name("dev"), "my-runtime")
    assert caught.value.status_code == 422 and caught.value.field == "format"
    with pytest.raises(BadRequestError) as unknown:
        _register(live_server, unique_name("dev"), "executorch", "caffe2")
    assert unknown.value.status_code == 422


def test_jobs_for_a_device_whose_format_the_ops_lack_get_a_4xx_naming_it_and_the_command(live_server, unique_name):
    admin = live_server.client(live_server.admin_token)
    name = unique_name("pixel")
    _register(live_server, name, "executorch")
    keys = [unique_name("op") for _ in range(3)]
    admin.upload_ops([op_upload(key, seed) for seed, key in enumerate(keys)])
    with pytest.raises(ConflictError) as caught:
        admin.create_jobs(name, keys)
    error = caught.value
    assert error.status_code == 409 and error.field == "keys[0]"
    assert f"op {keys[0]!r} and 2 more lacks" in error.detail and ".pte" in error.detail
    assert f"dnas lut request --device {name} --format pte" in error.detail
    # Nothing was queued: the device's coverage is untouched.
    assert admin.get_device(name).coverage.queued == 0


def test_a_compiled_file_is_added_to_an_existing_op_served_by_format_and_leased_with_its_sha(
    live_server, unique_name
):
    admin = live_server.client(live_server.admin_token)
    name = unique_name("pixel")
    device = live_server.client(_register(live_server, name, "executorch").token)
    key = unique_name("op")
    onnx_only = op_upload(key, 7)
    assert admin.upload_ops([onnx_only]).created == [key]
    assert admin.get_op(key)["formats"] == {"onnx": sha256(onnx_only.onnx_bytes)}
    with pytest.raises(NotFoundError, match=r"has no \.pte file: compile and upload it with `dnas lut request"):
        admin.get_op_model(key, "pte")

    receipt = admin.upload_ops([OpUpload(key, onnx_only.spec, onnx_only.onnx_bytes, {"pte": PTE})])
    assert (receipt.created, receipt.existing, receipt.artifacts_added) == ([], [key], 1)
    assert admin.get_op(key)["formats"] == {"onnx": sha256(onnx_only.onnx_bytes), "pte": sha256(PTE)}
    assert admin.get_op_model(key, "pte") == PTE
    assert admin.get_op_model(key) == onnx_only.onnx_bytes  # ONNX stays the default
    again = admin.upload_ops([OpUpload(key, onnx_only.spec, onnx_only.onnx_bytes, {"pte": PTE})])
    assert again.artifacts_added == 0  # idempotent

    assert admin.create_jobs(name, [key]).queued == 1
    (task,) = device.lease(1)
    assert (task.key, task.format, task.model_sha256, task.onnx_sha256) == (
        key, "pte", sha256(PTE), sha256(onnx_only.onnx_bytes),
    )  # fmt: skip


def test_a_new_op_uploaded_with_every_format_at_once(live_server, unique_name):
    admin = live_server.client(live_server.admin_token)
    key = unique_name("op")
    base = op_upload(key, 11)
    receipt = admin.upload_ops([OpUpload(key, base.spec, base.onnx_bytes, {"pte": PTE, "tflite": TFLITE})])
    assert (receipt.created, receipt.artifacts_added) == ([key], 2)
    assert set(admin.get_op(key)["formats"]) == {"onnx", "pte", "tflite"}
    response = httpx.get(f"{live_server.url}/ops/{key}/models/tflite",
                         headers={"Authorization": f"Bearer {live_server.admin_token}"})  # fmt: skip
    assert response.content == TFLITE and response.headers["X-Model-Sha256"] == sha256(TFLITE)


def test_a_file_that_is_not_the_format_it_claims_is_refused(live_server, unique_name):
    admin = live_server.client(live_server.admin_token)
    key = unique_name("op")
    base = op_upload(key, 3)
    with pytest.raises(BadRequestError, match="not a .pte file: file identifier b'TFL3'") as caught:
        admin.upload_ops([OpUpload(key, base.spec, base.onnx_bytes, {"pte": TFLITE})])
    assert caught.value.field == "ops[0].artifacts.pte"
    with pytest.raises(BadRequestError) as unknown:
        admin._json("POST", "/ops", json={"ops": [{"key": key, "spec": base.spec,
                    "onnx_b64": base64.b64encode(base.onnx_bytes).decode(), "artifacts": {"caffe2": "AAAA"}}]})  # fmt: skip
    assert unknown.value.status_code == 422
    with pytest.raises(NotFoundError):
        admin.get_op(key)  # nothing was stored


def test_another_file_for_a_format_the_op_has_is_a_conflict(live_server, unique_name):
    admin = live_server.client(live_server.admin_token)
    key = unique_name("op")
    base = op_upload(key, 5)
    admin.upload_ops([OpUpload(key, base.spec, base.onnx_bytes, {"tflite": TFLITE})])
    with pytest.raises(ConflictError, match=r"already has a \.tflite file") as caught:
        admin.upload_ops([OpUpload(key, base.spec, base.onnx_bytes, {"tflite": OTHER_TFLITE})])
    assert caught.value.field == "ops[0].artifacts.tflite"
    assert admin.get_op_model(key, "tflite") == TFLITE
