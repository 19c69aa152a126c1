"""Small real inputs for the server tests: ONNX ops and results (profiler_server/example_ops.py), devices set up."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from fbnet_core.client import ProfilerClient
from profiler_server.example_ops import RUNTIME, op_upload


def unique(prefix: str) -> str:
    """A name no other test uses (the session's server is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def task_result(
    task_id: int, key: str, samples_us: list[float], onnx_sha256: str | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "task_id": task_id,
        "result_id": str(uuid.uuid4()),
        "key": key,
        "samples_us": samples_us,
        "runtime": RUNTIME,
    }
    if onnx_sha256 is not None:
        result["onnx_sha256"] = onnx_sha256
    return result


def offline_result(key: str, onnx_sha256: str, samples_us: list[float]) -> dict[str, Any]:
    return {"result_id": str(uuid.uuid4()), "key": key, "onnx_sha256": onnx_sha256, "samples_us": samples_us,
            "runtime": RUNTIME}  # fmt: skip


class Setup:
    """A registered device with ops uploaded (and optionally queued) on a live server."""

    def __init__(self, server: Any, unique_name: Any, n_ops: int = 3, queue: bool = True) -> None:
        self.admin: ProfilerClient = server.client(server.admin_token)
        self.device_name = unique_name("dev")
        registered = server.client(server.enroll_token).register_device(
            self.device_name, "linux-x86_64", {"cores": 2}
        )
        self.agent: ProfilerClient = server.client(registered.token)
        self.device_token = registered.token
        self.keys = [unique_name(f"op{i}") for i in range(n_ops)]
        seeds = [int(uuid.uuid4().int % 1_000_000) for _ in self.keys]
        uploads = [op_upload(key, seed) for key, seed in zip(self.keys, seeds, strict=True)]
        self.sha = {u.key: sha256(u.onnx_bytes) for u in uploads}
        self.onnx = {u.key: u.onnx_bytes for u in uploads}
        self.admin.upload_ops(uploads)
        if queue:
            self.admin.create_jobs(self.device_name, self.keys)


def with_model_in_its_row(database_url: str, engine: Any, blobs: Any, content: bytes) -> None:
    """The database migrated back to revision 0003 (models in the `onnx_models` rows), holding `content` there:
    the state the blob-store migration (0004) moves out of the database."""
    from alembic import command
    from sqlalchemy import text

    from db.migrate import alembic_config

    command.downgrade(alembic_config(database_url, blobs), "0003")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO onnx_models (sha256, content, size_bytes, created_at) VALUES (:s, :c, :n, :t)"),
            {"s": sha256(content), "c": content, "n": len(content), "t": "2026-12-01 00:00:00"},
        )
