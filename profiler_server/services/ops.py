"""Ops: content-addressed ONNX models under URL-safe keys, validated against docs/contracts.md."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime

import onnx
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import OnnxModel, Op
from profiler_server.errors import BadRequest, Conflict, NotFound
from profiler_server.schemas import OpPublic, OpsReceipt, OpUpload
from profiler_server.services.onnx_safety import UnsafeModelError, check_allocation, check_self_contained


def decode_onnx(onnx_b64: str, field: str) -> bytes:
    try:
        return base64.b64decode(onnx_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"not valid base64: {exc}", field=field) from exc


def check_onnx(content: bytes, field: str) -> None:
    """A loadable, checker-clean model with the contract's I/O (input `input` [1, C, H, W], output `output`) whose
    every tensor has a static shape within the allocation limits (services/onnx_safety.py)."""
    try:
        model = onnx.load_model_from_string(content)
        check_self_contained(model)  # before the checker, which would stat external data paths
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, ... : all mean "not a valid model"
        raise BadRequest(f"not a valid ONNX model: {str(exc).splitlines()[0][:300]}", field=field) from exc
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if [i.name for i in inputs] != ["input"]:
        raise BadRequest(
            f"the model must have one input named 'input', got {[i.name for i in inputs]}", field=field
        )
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or any(not d.HasField("dim_value") for d in dims) or dims[0].dim_value != 1:
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
        raise BadRequest(f"input 'input' must have a static shape [1, C, H, W], got {shape}", field=field)
    if [o.name for o in model.graph.output] != ["output"]:
        outputs = [o.name for o in model.graph.output]
        raise BadRequest(f"the model must have one output named 'output', got {outputs}", field=field)
    try:
        check_allocation(model)
    except UnsafeModelError as exc:
        raise BadRequest(f"the model's allocation cannot be bounded: {exc}", field=field) from exc


@dataclass(frozen=True, slots=True)
class DecodedUpload:
    upload: OpUpload
    content: bytes
    sha256: str


def decode_uploads(uploads: list[OpUpload]) -> list[DecodedUpload]:
    """Decode and hash every model (no database): a key twice, or bad base64, is a 422 naming it."""
    seen: dict[str, int] = {}
    decoded: list[DecodedUpload] = []
    for i, upload in enumerate(uploads):
        if upload.key in seen:
            raise BadRequest(
                f"key {upload.key!r} appears twice (also ops[{seen[upload.key]}])", f"ops[{i}].key"
            )
        seen[upload.key] = i
        content = decode_onnx(upload.onnx_b64, f"ops[{i}].onnx_b64")
        decoded.append(DecodedUpload(upload, content, hashlib.sha256(content).hexdigest()))
    return decoded


def known_models(session: Session, sha256s: set[str]) -> set[str]:
    return set(session.scalars(select(OnnxModel.sha256).where(OnnxModel.sha256.in_(sha256s))))


def check_new_models(decoded: list[DecodedUpload], known: set[str]) -> None:
    """Check every model the server does not have yet: done before the write transaction, so that checking
    (seconds for a large model) never holds the database's write lock."""
    checked: set[str] = set()
    for i, item in enumerate(decoded):
        if item.sha256 not in known and item.sha256 not in checked:
            check_onnx(item.content, f"ops[{i}].onnx_b64")
            checked.add(item.sha256)


def upload_ops(session: Session, decoded: list[DecodedUpload], now: datetime) -> OpsReceipt:
    """Store checked uploads (`check_new_models` saw every model unknown when it ran; one stored since is
    skipped here)."""
    keys = [item.upload.key for item in decoded]
    existing_ops = {
        op.key: op.onnx_sha256
        for op in session.execute(select(Op.key, Op.onnx_sha256).where(Op.key.in_(keys)))
    }
    stored = known_models(session, {item.sha256 for item in decoded})
    created: list[str] = []
    existing: list[str] = []
    for i, item in enumerate(decoded):
        upload, sha = item.upload, item.sha256
        if upload.key in existing_ops:
            if existing_ops[upload.key] != sha:
                raise Conflict(
                    f"key {upload.key!r} already exists with a different model "
                    f"(sha256 {existing_ops[upload.key]}, uploaded {sha})",
                    field=f"ops[{i}].onnx_b64",
                )
            existing.append(upload.key)
            continue
        if sha not in stored:
            session.add(
                OnnxModel(sha256=sha, content=item.content, size_bytes=len(item.content), created_at=now)
            )
            stored.add(sha)
        session.add(Op(key=upload.key, spec=upload.spec, onnx_sha256=sha, created_at=now))
        created.append(upload.key)
    session.commit()
    return OpsReceipt(created=created, existing=existing)


def get_op(session: Session, key: str) -> OpPublic:
    row = session.execute(
        select(Op, OnnxModel.size_bytes)
        .join(OnnxModel, OnnxModel.sha256 == Op.onnx_sha256)
        .where(Op.key == key)
    ).first()
    if row is None:
        raise NotFound(f"unknown op key {key!r}", field="key")
    op, size_bytes = row
    return OpPublic(
        key=op.key, spec=op.spec, onnx_sha256=op.onnx_sha256, size_bytes=size_bytes, created_at=op.created_at
    )


def get_model(session: Session, key: str) -> tuple[bytes, str]:
    """The ONNX bytes of an op and their sha256."""
    row = session.execute(
        select(OnnxModel.content, OnnxModel.sha256)
        .join(Op, Op.onnx_sha256 == OnnxModel.sha256)
        .where(Op.key == key)
    ).first()
    if row is None:
        raise NotFound(f"unknown op key {key!r}", field="key")
    return row.content, row.sha256
