"""Op models live in the blob store's files, not in database rows; `profiler-server gc` removes one-off ops'
files (whole networks of a validation) past the retention period, and files no model row names."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import inspect

from db.session import make_engine
from fbnet_core.client import OpUpload
from profiler_server.blobs import DirectoryBlobStore
from profiler_server.example_ops import tiny_onnx
from tests.server.helpers import Setup, sha256, task_result, with_model_in_its_row


def _gc(server, *args: str) -> str:
    env = {**os.environ, "PROFILER_DATABASE_URL": server.database_url,
           "PROFILER_BLOB_DIR": str(server.log_path.parent / "blobs")}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "profiler_server.cli", "gc", *args], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout


def _model(server, key: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}/ops/{key}/model.onnx", headers={"Authorization": f"Bearer {server.admin_token}"}
    )


def test_models_are_files_of_the_blob_store_not_database_rows(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1, queue=False)
    key = s.keys[0]
    blobs = DirectoryBlobStore(live_server.log_path.parent / "blobs")
    assert blobs.get(s.sha[key]) == s.onnx[key]
    assert _model(live_server, key).content == s.onnx[key]
    engine = make_engine(live_server.database_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("onnx_models")}
    finally:
        engine.dispose()
    assert "content" not in columns


def test_gc_removes_one_off_models_past_retention_keeps_the_rest_and_an_upload_brings_one_back(
    backend, live_server_factory, unique_name
):
    server = live_server_factory(backend)
    s = Setup(server, unique_name, n_ops=1, queue=False)  # a block op: never one-off
    block = s.keys[0]
    networks = {unique_name("net"): tiny_onnx(seed) for seed in (101, 102, 103)}
    measured, busy, idle = networks
    s.admin.upload_ops([OpUpload(key, {"kind": "network"}, content) for key, content in networks.items()])
    s.admin.create_jobs(s.device_name, [measured])
    task = s.agent.lease()[0]
    assert s.agent.post_results([task_result(task.task_id, measured, [9.0, 9.1, 9.2])]).accepted == 1
    s.admin.create_jobs(s.device_name, [busy])  # queued: an agent may still download it
    blobs = DirectoryBlobStore(server.log_path.parent / "blobs")
    orphan = "ab" * 32
    blobs.put(orphan, b"an upload that never committed")
    an_hour_and_more_ago = time.time() - 3700
    os.utime(blobs.path(orphan), (an_hour_and_more_ago, an_hour_and_more_ago))

    assert "would remove 2 one-off model files" in _gc(server, "--older-than-days", "0", "--dry-run")
    assert _model(server, measured).status_code == 200  # a dry run removes nothing
    assert "removed 2 one-off model files" in (report := _gc(server, "--older-than-days", "0"))
    assert "and 1 unreferenced files" in report
    for key in (measured, idle):
        gone = _model(server, key)
        assert gone.status_code == 410 and gone.json()["field"] == "key", gone.text
        assert not blobs.path(sha256(networks[key])).exists()
    assert _model(server, busy).status_code == 200 and _model(server, block).status_code == 200
    assert not blobs.path(orphan).exists()
    assert s.admin.get_lut(s.device_name).entries[measured]["median_us"] == 9.1  # measurements stay
    again = s.admin.upload_ops([OpUpload(measured, {"kind": "network"}, networks[measured])])
    assert again.existing == [measured] and _model(server, measured).content == networks[measured]


def test_gc_keeps_one_off_models_younger_than_the_retention_period(backend, live_server_factory, unique_name):
    server = live_server_factory(backend)
    s = Setup(server, unique_name, n_ops=1, queue=False)
    key = unique_name("net")
    s.admin.upload_ops([OpUpload(key, {"kind": "network"}, tiny_onnx(7))])
    assert "removed 0 one-off model files" in _gc(server)  # default: 7 days
    assert _model(server, key).status_code == 200


def test_lut_request_uploads_again_an_op_whose_model_gc_removed(backend, live_server_factory, unique_name):
    """An entry still missing for a device whose op's file `gc` removed: `dnas lut request` sends the op again, so
    the agent that leases the job can download it (rather than a 410)."""
    from fbnet_core.keys import ops_for_space
    from fbnet_core.space import fbnet_space
    from search_client.lut.client import request_lut

    server = live_server_factory(backend)
    s = Setup(server, unique_name, n_ops=1, queue=False)
    (classifier,) = [op for op in ops_for_space(fbnet_space(16, 0.25, 10, 64, small_input=True))
                     if op.spec["kind"] == "pool_fc"]  # fmt: skip
    first = request_lut(s.admin, s.device_name, [classifier])
    assert first.uploaded == [classifier.key] and first.queued == 1
    (task,) = s.agent.lease()
    assert s.agent.post_results([task_result(task.task_id, classifier.key, [5.0, 5.1])]).accepted == 1
    other_device = unique_name("dev")  # a second device whose LUT still lacks the op
    server.client(server.enroll_token).register_device(other_device, "linux-x86_64", {"cores": 2})
    assert "removed 1 one-off model files" in _gc(server, "--kinds", "pool_fc", "--older-than-days", "0")
    assert s.admin.get_op(classifier.key)["model_removed"] is True
    assert _model(server, classifier.key).status_code == 410

    again = request_lut(s.admin, other_device, [classifier])
    assert again.uploaded == [classifier.key] and again.queued == 1
    assert s.admin.get_op(classifier.key)["model_removed"] is False
    assert sha256(_model(server, classifier.key).content) == s.admin.get_op(classifier.key)["onnx_sha256"]
    # The first device's entry stayed: nothing of it is requested, nothing sent.
    assert request_lut(s.admin, s.device_name, [classifier]).uploaded == []


def test_the_migration_moves_stored_models_into_files_and_back(fresh_database_url, tmp_path: Path):
    from alembic import command
    from sqlalchemy import text

    from db.migrate import alembic_config, upgrade

    def downgrade(url: str, revision: str, blobs: DirectoryBlobStore) -> None:
        command.downgrade(alembic_config(url, blobs), revision)

    blob_dir = tmp_path / "blobs"
    blobs = DirectoryBlobStore(blob_dir)
    content = tiny_onnx(11)
    engine = make_engine(fresh_database_url)
    try:
        with_model_in_its_row(fresh_database_url, engine, blobs, content)
        upgrade(fresh_database_url, blobs=blobs)
        assert blobs.get(sha256(content)) == content
        assert "content" not in {c["name"] for c in inspect(engine).get_columns("onnx_models")}
        downgrade(fresh_database_url, "0003", blobs)
        with engine.connect() as conn:
            assert bytes(conn.execute(text("SELECT content FROM onnx_models")).scalar()) == content
    finally:
        engine.dispose()
    upgrade(fresh_database_url, blobs=blobs)
