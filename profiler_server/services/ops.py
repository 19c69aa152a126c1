"""Ops: content-addressed ONNX models under URL-safe keys, validated against docs/contracts.md."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime

import onnx
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import OnnxModel, Op
from profiler_server.errors import BadRequest, Conflict, NotFound
from profiler_server.schemas import OpPublic, OpsReceipt, OpUpload
from profiler_server.services.onnx_safety import check_self_contained


def decode_onnx(onnx_b64: str, field: str) -> bytes:
    try:
        return base64.b64decode(onnx_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"not valid base64: {exc}", field=field) from exc


def check_onnx(content: bytes, field: str) -> None:
    """A loadable, checker-clean model with the contract's I/O: input `input` [1, C, H, W], output `output`."""
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


def upload_ops(session: Session, uploads: list[OpUpload], now: datetime) -> OpsReceipt:
    seen: dict[str, int] = {}
    decoded: list[tuple[OpUpload, bytes, str]] = []
    for i, upload in enumerate(uploads):
        if upload.key in seen:
            raise BadRequest(
                f"key {upload.key!r} appears twice (also ops[{seen[upload.key]}])", f"ops[{i}].key"
            )
        seen[upload.key] = i
        content = decode_onnx(upload.onnx_b64, f"ops[{i}].onnx_b64")
        decoded.append((upload, content, hashlib.sha256(content).hexdigest()))

    existing_ops = {
        op.key: op.onnx_sha256
        for op in session.execute(select(Op.key, Op.onnx_sha256).where(Op.key.in_(seen)))
    }
    known_models = set(
        session.scalars(select(OnnxModel.sha256).where(OnnxModel.sha256.in_({sha for _, _, sha in decoded})))
    )
    created: list[str] = []
    existing: list[str] = []
    for i, (upload, content, sha) in enumerate(decoded):
        if upload.key in existing_ops:
            if existing_ops[upload.key] != sha:
                raise Conflict(
                    f"key {upload.key!r} already exists with a different model "
                    f"(sha256 {existing_ops[upload.key]}, uploaded {sha})",
                    field=f"ops[{i}].onnx_b64",
                )
            existing.append(upload.key)
            continue
        if sha not in known_models:
            check_onnx(content, f"ops[{i}].onnx_b64")
            session.add(OnnxModel(sha256=sha, content=content, size_bytes=len(content), created_at=now))
            known_models.add(sha)
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
