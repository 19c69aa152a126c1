"""Ops: content-addressed models under URL-safe keys, validated against docs/contracts.md: each op's ONNX file
(its identity) and the same op compiled for other runtimes (`.pte`, `.tflite`), one file per (key, format)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime

import onnx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import OnnxModel, Op, OpArtifact
from fbnet_core.model_formats import FORMAT_SUFFIX, header_problem
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
class DecodedFile:
    model_format: str
    content: bytes
    sha256: str
    field: str


@dataclass(frozen=True, slots=True)
class DecodedUpload:
    upload: OpUpload
    content: bytes
    sha256: str
    artifacts: tuple[DecodedFile, ...] = ()

    def files(self, index: int) -> list[DecodedFile]:
        """The ONNX file and every other format's, each with the request field that carried it."""
        onnx_file = DecodedFile("onnx", self.content, self.sha256, f"ops[{index}].onnx_b64")
        return [onnx_file, *self.artifacts]


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
        artifacts = []
        for model_format, b64 in sorted(upload.artifacts.items()):
            field = f"ops[{i}].artifacts.{model_format}"
            data = decode_onnx(b64, field)
            problem = header_problem(model_format, data)
            if problem is not None:
                raise BadRequest(problem, field=field)
            artifacts.append(DecodedFile(model_format, data, hashlib.sha256(data).hexdigest(), field))
        decoded.append(DecodedUpload(upload, content, hashlib.sha256(content).hexdigest(), tuple(artifacts)))
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
        for file in item.files(i):
            if file.sha256 in checked or known.get(file.sha256, False):
                continue
            if file.sha256 not in known and file.model_format == "onnx":
                check_onnx(file.content, file.field)  # the other formats' headers were checked when decoded
            blobs.put(file.sha256, file.content)
            checked.add(file.sha256)


def upload_ops(session: Session, decoded: list[DecodedUpload], now: datetime) -> OpsReceipt:
    """Store checked uploads (`store_new_models` checked and wrote every model unknown when it ran; one stored
    since is skipped here). An existing key with the same ONNX file gains the formats it lacked; a format it
    has with a different file is a conflict."""
    keys = [item.upload.key for item in decoded]
    existing_ops = {
        op.key: (op.id, op.onnx_sha256)
        for op in session.execute(select(Op.key, Op.id, Op.onnx_sha256).where(Op.key.in_(keys)))
    }
    existing_files: dict[tuple[int, str], str] = {
        (row.op_id, row.model_format): row.sha256
        for row in session.execute(
            select(OpArtifact.op_id, OpArtifact.model_format, OpArtifact.sha256).where(
                OpArtifact.op_id.in_([op_id for op_id, _ in existing_ops.values()])
            )
        )
    }
    stored = known_models(session, {file.sha256 for i, item in enumerate(decoded) for file in item.files(i)})
    created: list[str] = []
    existing: list[str] = []
    artifacts_added = 0
    for i, item in enumerate(decoded):
        upload, sha = item.upload, item.sha256
        if upload.key in existing_ops and existing_ops[upload.key][1] != sha:
            raise Conflict(
                f"key {upload.key!r} already exists with a different model "
                f"(sha256 {existing_ops[upload.key][1]}, uploaded {sha})",
                field=f"ops[{i}].onnx_b64",
            )
        for file in item.files(i):
            if file.sha256 not in stored:
                session.add(OnnxModel(sha256=file.sha256, size_bytes=len(file.content), created_at=now))
            elif not stored[file.sha256]:  # gc removed its file; `store_new_models` wrote it again
                session.execute(update(OnnxModel).where(OnnxModel.sha256 == file.sha256).values(removed_at=None))
            stored[file.sha256] = True
        if upload.key in existing_ops:
            existing.append(upload.key)
            op_id = existing_ops[upload.key][0]
        else:
            op = Op(key=upload.key, spec=upload.spec, onnx_sha256=sha, created_at=now)
            session.add(op)
            session.flush()  # its id, for its files' rows
            op_id = op.id
            created.append(upload.key)
        for file in item.files(i):
            known_sha = existing_files.get((op_id, file.model_format))
            if known_sha is None:
                session.add(OpArtifact(op_id=op_id, model_format=file.model_format, sha256=file.sha256, created_at=now))
                existing_files[(op_id, file.model_format)] = file.sha256
                artifacts_added += file.model_format != "onnx"
            elif known_sha != file.sha256:
                raise Conflict(
                    f"op {upload.key!r} already has a {FORMAT_SUFFIX[file.model_format]} file with sha256 "
                    f"{known_sha}, uploaded {file.sha256} (compiled by another compiler version?)",
                    field=file.field,
                )
    session.commit()
    return OpsReceipt(created=created, existing=existing, artifacts_added=artifacts_added)


def formats_of(session: Session, op_id: int) -> dict[str, str]:
    rows = session.execute(
        select(OpArtifact.model_format, OpArtifact.sha256).where(OpArtifact.op_id == op_id).order_by(OpArtifact.model_format)
    )
    return dict(rows.tuples().all())


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
        key=op.key, spec=op.spec, onnx_sha256=op.onnx_sha256, size_bytes=size_bytes, created_at=op.created_at,
        formats=formats_of(session, op.id),
        model_removed=removed_at is not None,
    )


def model_sha256(session: Session, key: str, model_format: str = "onnx") -> str:
    """The sha256 of an op's model in `model_format`, whose file is in the blob store (410 once gc removed it)."""
    op_id = session.scalar(select(Op.id).where(Op.key == key))
    if op_id is None:
        raise NotFound(f"unknown op key {key!r}", field="key")
    row = session.execute(
        select(OnnxModel.sha256, OnnxModel.removed_at)
        .join(OpArtifact, OpArtifact.sha256 == OnnxModel.sha256)
        .where(OpArtifact.op_id == op_id, OpArtifact.model_format == model_format)
    ).first()
    if row is None:
        raise NotFound(
            f"op {key!r} has no {FORMAT_SUFFIX[model_format]} file: compile and upload it with "
            f"`dnas lut request --format {model_format}`",
            field="format",
        )
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
