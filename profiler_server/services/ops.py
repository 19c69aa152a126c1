"""Ops: content-addressed ONNX models under URL-safe keys, validated against docs/contracts.md."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime

import onnx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import OnnxModel, Op
from fbnet_core.onnx_safety import UnsafeModelError, check_allocation, check_self_contained
from profiler_server.blobs import BlobMissing, BlobStore
from profiler_server.errors import BadRequest, Conflict, Gone, NotFound
from profiler_server.schemas import OpPublic, OpsReceipt, OpUpload


def decode_onnx(onnx_b64: str, field: str) -> bytes:
    try:
        return base64.b64decode(onnx_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"not valid base64: {exc}", field=field) from exc


def check_onnx(content: bytes, field: str) -> None:
    """A loadable, checker-clean model with the contract's I/O (input `input` [1, C, H, W], output `output`) whose
    every tensor has a static shape within the allocation limits (fbnet_core/onnx_safety.py)."""
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


def known_models(session: Session, sha256s: set[str]) -> dict[str, bool]:
    """{sha256: whether its file is there} for the models among `sha256s` the server has a row for."""
    rows = session.execute(
        select(OnnxModel.sha256, OnnxModel.removed_at).where(OnnxModel.sha256.in_(sha256s))
    )
    return {sha256: removed_at is None for sha256, removed_at in rows}


def store_new_models(decoded: list[DecodedUpload], known: dict[str, bool], blobs: BlobStore) -> None:
    """Check every model the server does not have yet and write its file, and write again the files `gc` removed:
    done before the write transaction, so that checking and writing (seconds for a large model) never hold the
    database's write lock. A file whose row is never committed is removed by `gc`."""
    checked: set[str] = set()
    for i, item in enumerate(decoded):
        if item.sha256 in checked or known.get(item.sha256, False):
            continue
        if item.sha256 not in known:
            check_onnx(item.content, f"ops[{i}].onnx_b64")
        blobs.put(item.sha256, item.content)
        checked.add(item.sha256)


def upload_ops(session: Session, decoded: list[DecodedUpload], now: datetime) -> OpsReceipt:
    """Store checked uploads (`store_new_models` checked and wrote every model unknown when it ran; one stored
    since is skipped here)."""
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
        if upload.key in existing_ops and existing_ops[upload.key] != sha:
            raise Conflict(
                f"key {upload.key!r} already exists with a different model "
                f"(sha256 {existing_ops[upload.key]}, uploaded {sha})",
                field=f"ops[{i}].onnx_b64",
            )
        if sha not in stored:
            session.add(OnnxModel(sha256=sha, size_bytes=len(item.content), created_at=now))
        elif not stored[sha]:  # gc removed its file; `store_new_models` wrote it again
            session.execute(update(OnnxModel).where(OnnxModel.sha256 == sha).values(removed_at=None))
        stored[sha] = True
        if upload.key in existing_ops:
            existing.append(upload.key)
            continue
        session.add(Op(key=upload.key, spec=upload.spec, onnx_sha256=sha, created_at=now))
        created.append(upload.key)
    session.commit()
    return OpsReceipt(created=created, existing=existing)


def get_op(session: Session, key: str) -> OpPublic:
    row = session.execute(
        select(Op, OnnxModel.size_bytes, OnnxModel.removed_at)
        .join(OnnxModel, OnnxModel.sha256 == Op.onnx_sha256)
        .where(Op.key == key)
    ).first()
    if row is None:
        raise NotFound(f"unknown op key {key!r}", field="key")
    op, size_bytes, removed_at = row
    return OpPublic(
        key=op.key,
        spec=op.spec,
        onnx_sha256=op.onnx_sha256,
        size_bytes=size_bytes,
        created_at=op.created_at,
        model_removed=removed_at is not None,
    )


def model_sha256(session: Session, key: str) -> str:
    """The sha256 of an op's model, whose file is in the blob store (410 once gc removed it)."""
    row = session.execute(
        select(OnnxModel.sha256, OnnxModel.removed_at)
        .join(Op, Op.onnx_sha256 == OnnxModel.sha256)
        .where(Op.key == key)
    ).first()
    if row is None:
        raise NotFound(f"unknown op key {key!r}", field="key")
    if row.removed_at is not None:
        raise _removed(key)
    return row.sha256


def read_model(blobs: BlobStore, key: str, sha256: str) -> bytes:
    try:
        return blobs.get(sha256)
    except BlobMissing as exc:
        raise _removed(key) from exc


def _removed(key: str) -> Gone:
    return Gone(f"the model of op {key!r} was removed (profiler-server gc); upload the op again", field="key")
