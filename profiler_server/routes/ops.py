"""Ops: upload (admin) and download of their ONNX models (any reader)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from profiler_server.clock import utcnow
from profiler_server.deps import AdminPrincipal, ReaderPrincipal, ReadSession, WriteSession
from profiler_server.schemas import Key, OpPublic, OpsReceipt, OpsUpload
from profiler_server.services import ops

router = APIRouter(prefix="/ops", tags=["ops"])


@router.post("", response_model=OpsReceipt)
def upload(body: OpsUpload, _: AdminPrincipal, session: WriteSession) -> OpsReceipt:
    return ops.upload_ops(session, body.ops, utcnow())


@router.get("/{key}", response_model=OpPublic)
def get_op(key: Key, _: ReaderPrincipal, session: ReadSession) -> OpPublic:
    return ops.get_op(session, key)


@router.get("/{key}/model.onnx", response_class=Response)
def get_model(key: Key, _: ReaderPrincipal, session: ReadSession) -> Response:
    content, sha256 = ops.get_model(session, key)
    return Response(
        content,
        media_type="application/octet-stream",
        headers={
            "ETag": f'"{sha256}"',
            "X-Onnx-Sha256": sha256,
            "Cache-Control": "private, max-age=31536000, immutable",
        },
    )
