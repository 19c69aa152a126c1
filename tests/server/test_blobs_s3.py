"""Op models in an S3-compatible bucket (`PROFILER_BLOB_URL=s3://bucket/prefix`), tested against moto's
S3-compatible HTTP server (`moto.server.ThreadedMotoServer`) on 127.0.0.1: the store's semantics over real HTTP,
a real profiler server storing its models there, `profiler-server gc` removing them, and an unreachable store
answered as a 503 (server) or one line (command line)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from fbnet_core.client import OpUpload
from profiler_server.blobs import BlobMissing, BlobStoreUnavailable
from profiler_server.blobs.s3 import S3BlobStore, connect
from profiler_server.example_ops import tiny_onnx
from profiler_server.local_server import free_port
from tests.cli_process import error_lines, run
from tests.server.helpers import Setup, sha256, with_model_in_its_row

# Requests to a store that is down fail at once (connection refused); a short timeout bounds anything slower.
TEST_S3_TIMEOUT_S = 2.0
MOTO_START_TIMEOUT_S = 30.0


@contextmanager
def _moto_process() -> Iterator[str]:
    """moto's S3-compatible server in a child process, for a test that stops it: its port then refuses connections
    (a stopped ThreadedMotoServer keeps its socket open, and requests would hang until their timeout)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + MOTO_START_TIMEOUT_S
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(autouse=True)
def _aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto accepts any credentials; these keep boto3 (here, in the servers and in `gc`) off a real account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """The URL of moto's S3-compatible server on 127.0.0.1, shared by this module's tests (unique buckets)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
        region_name="us-east-1",
    )  # fmt: skip


def _new_bucket(endpoint: str) -> str:
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    _s3(endpoint).create_bucket(Bucket=bucket)
    return bucket


def _keys(endpoint: str, bucket: str) -> set[str]:
    listed = _s3(endpoint).list_objects_v2(Bucket=bucket)
    return {item["Key"] for item in listed.get("Contents", [])}


def _store(endpoint: str, bucket: str, prefix: str = "models", list_page_size: int = 1000) -> S3BlobStore:
    return connect(
        bucket, prefix, endpoint_url=endpoint, timeout_s=TEST_S3_TIMEOUT_S, list_page_size=list_page_size
    )


def _admin(server: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.admin_token}"}


def _model(server: Any, key: str) -> httpx.Response:
    return httpx.get(f"{server.url}/ops/{key}/model.onnx", headers=_admin(server))


def _s3_settings(endpoint: str, bucket: str) -> dict[str, Any]:
    return {
        "blob_url": f"s3://{bucket}/models",
        "s3_endpoint_url": endpoint,
        "s3_timeout_s": TEST_S3_TIMEOUT_S,
    }


# -- the store on its own --------------------------------------------------------------------------------------


def test_s3_store_on_moto_server_put_is_idempotent_get_and_delete_follow_the_directory_store(moto_endpoint):
    bucket = _new_bucket(moto_endpoint)
    store = _store(moto_endpoint, bucket)
    content = b"an op model's bytes"
    digest = sha256(content)
    store.put(digest, content)
    store.put(digest, content)  # already there: a no-op
    assert _keys(moto_endpoint, bucket) == {f"models/{digest}"}
    assert store.get(digest) == content
    assert store.location == f"s3://{bucket}/models"
    missing = "0" * 64
    with pytest.raises(BlobMissing):
        store.get(missing)
    assert store.delete(digest) == len(content)
    assert store.delete(digest) == 0 and store.delete(missing) == 0
    assert _keys(moto_endpoint, bucket) == set()
    with pytest.raises(ValueError, match="not a sha256"):
        store.put("../escape", content)


def test_s3_store_on_moto_server_lists_every_model_across_pages_and_nothing_else(moto_endpoint):
    bucket = _new_bucket(moto_endpoint)
    store = _store(moto_endpoint, bucket, list_page_size=2)
    contents = [f"model {i}".encode() * (i + 1) for i in range(5)]
    before_s = time.time() - 60  # moto's clock and ours: the same machine, LastModified in whole seconds
    for content in contents:
        store.put(sha256(content), content)
    s3 = _s3(moto_endpoint)
    s3.put_object(Bucket=bucket, Key="models/README", Body=b"not a model")
    s3.put_object(Bucket=bucket, Key=f"elsewhere/{sha256(b'x')}", Body=b"x")  # outside the prefix
    pages = []
    store.client.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: pages.append(1))

    listed = list(store.stored())

    assert sorted((blob.sha256, blob.size_bytes) for blob in listed) == sorted(
        (sha256(content), len(content)) for content in contents
    )
    assert all(before_s <= blob.modified_s <= time.time() + 60 for blob in listed)
    assert len(pages) >= 3  # 6 keys under the prefix, 2 a page


def test_s3_store_errors_become_one_clear_error(moto_endpoint):
    absent = _store(moto_endpoint, f"absent-{uuid.uuid4().hex[:12]}")
    with pytest.raises(BlobStoreUnavailable, match="the bucket does not exist"):
        absent.put("1" * 64, b"x")
    with pytest.raises(BlobStoreUnavailable, match="the bucket does not exist"):
        list(absent.stored())
    down = _store(f"http://127.0.0.1:{free_port()}", "models")
    for action in (lambda: down.get("1" * 64), lambda: down.put("1" * 64, b"x"), lambda: list(down.stored())):
        with pytest.raises(BlobStoreUnavailable, match=r"models in s3://models/models: Could not connect"):
            action()


# -- a profiler server storing its models in the bucket --------------------------------------------------------


def _gc(server: Any, endpoint: str, bucket: str, *args: str) -> str:
    env = {**os.environ, "PROFILER_DATABASE_URL": server.database_url, "PROFILER_BLOB_URL": f"s3://{bucket}/models",
           "PROFILER_S3_ENDPOINT_URL": endpoint}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "profiler_server.cli", "gc", *args], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout


def test_server_on_moto_s3_stores_models_in_the_bucket_and_gc_removes_one_off_ones(
    backend, live_server_factory, unique_name, moto_endpoint
):
    bucket = _new_bucket(moto_endpoint)
    server = live_server_factory(backend, **_s3_settings(moto_endpoint, bucket))
    s = Setup(server, unique_name, n_ops=1, queue=False)  # uploaded through the HTTP API
    block = s.keys[0]
    assert _keys(moto_endpoint, bucket) == {f"models/{s.sha[block]}"}
    assert _model(server, block).content == s.onnx[block]
    assert not (server.log_path.parent / "blobs").exists()  # nothing in the directory store

    networks = {unique_name("net"): tiny_onnx(seed) for seed in (201, 202)}
    s.admin.upload_ops([OpUpload(key, {"kind": "network"}, content) for key, content in networks.items()])
    young_orphan = "ab" * 32  # an upload in flight: gc leaves unnamed objects younger than an hour
    _store(moto_endpoint, bucket).put(young_orphan, b"an upload that has not committed yet")

    report = _gc(server, moto_endpoint, bucket, "--older-than-days", "0")

    assert "removed 2 one-off model files" in report and "and 0 unreferenced files" in report
    assert f"from s3://{bucket}/models" in report
    assert _keys(moto_endpoint, bucket) == {f"models/{s.sha[block]}", f"models/{young_orphan}"}
    for key in networks:
        assert _model(server, key).status_code == 410
    assert _model(server, block).status_code == 200
    again = s.admin.upload_ops(
        [OpUpload(key, {"kind": "network"}, content) for key, content in networks.items()]
    )
    assert sorted(again.existing) == sorted(networks)
    assert {f"models/{sha256(content)}" for content in networks.values()} <= _keys(moto_endpoint, bucket)


def test_server_whose_s3_store_is_down_answers_503_with_a_message_on_upload_and_download(
    backend, live_server_factory, unique_name
):
    """A private moto server, stopped once an op is stored: the server keeps answering, with 503s for models."""
    with _moto_process() as endpoint:
        bucket = _new_bucket(endpoint)
        server = live_server_factory(backend, **_s3_settings(endpoint, bucket))
        s = Setup(server, unique_name, n_ops=1, queue=False)

    download = _model(server, s.keys[0])
    assert download.status_code == 503, download.text
    assert download.json()["detail"].startswith(f"model storage unavailable, retry later: cannot read models in "
                                                f"s3://{bucket}/models: Could not connect")  # fmt: skip
    assert download.headers["Retry-After"].isdigit()

    content = tiny_onnx(301)
    body = {"ops": [{"key": unique_name("op"), "spec": {"kind": "test_conv"},
                     "onnx_b64": base64.b64encode(content).decode()}]}  # fmt: skip
    upload = httpx.post(f"{server.url}/ops", json=body, headers=_admin(server))
    assert upload.status_code == 503, upload.text
    assert "cannot store models in" in upload.json()["detail"]
    assert httpx.get(f"{server.url}/ops/{body['ops'][0]['key']}", headers=_admin(server)).status_code == 404


def test_gc_with_the_s3_store_down_prints_one_line(fresh_database_url):
    bucket = "models"
    done = run(
        "profiler-server", "gc",
        env={"PROFILER_DATABASE_URL": fresh_database_url, "PROFILER_BLOB_URL": f"s3://{bucket}/lut",
             "PROFILER_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "PROFILER_S3_TIMEOUT_S": "2"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = error_lines(done.stderr)
    assert line.startswith(f"profiler-server: cannot list models in s3://{bucket}/lut: Could not connect")


def test_an_invalid_blob_url_is_a_one_line_settings_error(fresh_database_url):
    done = run("profiler-server", "gc", env={"PROFILER_DATABASE_URL": fresh_database_url,
                                             "PROFILER_BLOB_URL": "https://bucket/models"})  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [
        "profiler-server: invalid settings (blob_url): not an s3://bucket/prefix URL: 'https://bucket/models'"
    ]


def test_the_migration_moves_stored_models_into_the_moto_s3_bucket_and_back(
    fresh_database_url, moto_endpoint
):
    from alembic import command
    from sqlalchemy import text

    from db.migrate import alembic_config, upgrade
    from db.session import make_engine

    bucket = _new_bucket(moto_endpoint)
    store = _store(moto_endpoint, bucket)
    content = tiny_onnx(12)
    engine = make_engine(fresh_database_url)
    try:
        with_model_in_its_row(fresh_database_url, engine, store, content)
        upgrade(fresh_database_url, blobs=store)
        assert _keys(moto_endpoint, bucket) == {f"models/{sha256(content)}"}
        command.downgrade(alembic_config(fresh_database_url, store), "0003")
        with engine.connect() as conn:
            assert bytes(conn.execute(text("SELECT content FROM onnx_models")).scalar()) == content
    finally:
        engine.dispose()
    upgrade(fresh_database_url, blobs=store)
