"""Ops: upload (admin) and download of their models, ONNX or compiled for another runtime (any reader)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from fbnet_core.model_formats import ModelFormat
from profiler_server.clock import utcnow
from profiler_server.deps import AdminPrincipal, DatabaseDep, ReaderPrincipal
from profiler_server.json_body import json_body, openapi_json_body
from profiler_server.openapi import AUTHENTICATED, WITH_BODY, errors
from profiler_server.schemas import Key, OpPublic, OpsReceipt, OpsUpload
from profiler_server.services import ops

router = APIRouter(prefix="/ops", tags=["ops"])


@router.post("", response_model=OpsReceipt, responses=errors(*WITH_BODY, 409), openapi_extra=openapi_json_body(OpsUpload))
async def upload(
    _: AdminPrincipal,
    body: Annotated[OpsUpload, Depends(json_body(OpsUpload))],
    request: Request,
    database: DatabaseDep,
) -> OpsReceipt:
    decoded = await run_in_threadpool(ops.decode_uploads, body.ops)
    shas = {file.sha256 for i, item in enumerate(decoded) for file in item.files(i)}
    known = await database.read(lambda session: ops.known_models(session, shas))
    await run_in_threadpool(ops.store_new_models, decoded, known, request.app.state.blobs)
    now = utcnow()
    return await database.write(lambda session: ops.upload_ops(session, decoded, now))


@router.get("/{key}", response_model=OpPublic, responses=errors(*AUTHENTICATED, 404, 422))
async def get_op(key: Key, _: ReaderPrincipal, database: DatabaseDep) -> OpPublic:
    return await database.read(lambda session: ops.get_op(session, key))


@router.get("/{key}/model.onnx", response_class=Response, responses=errors(*AUTHENTICATED, 404, 410, 422))
async def get_model(key: Key, _: ReaderPrincipal, request: Request, database: DatabaseDep) -> Response:
    return await _model_response(key, "onnx", request, database)


@router.get(
    "/{key}/models/{model_format}", response_class=Response, responses=errors(*AUTHENTICATED, 404, 410, 422)
)
async def get_model_in_format(
    key: Key, model_format: ModelFormat, _: ReaderPrincipal, request: Request, database: DatabaseDep
) -> Response:
    """The op's file in one format (onnx, pte, tflite); 404 naming the command that uploads it when missing."""
    return await _model_response(key, model_format, request, database)


async def _model_response(key: str, model_format: str, request: Request, database: DatabaseDep) -> Response:
    sha256 = await database.read(lambda session: ops.model_sha256(session, key, model_format))
    # Read from the blob store in a worker thread, holding no database connection.
    content = await run_in_threadpool(ops.read_model, request.app.state.blobs, key, sha256)
    headers = {
        "ETag": f'"{sha256}"',
        "X-Model-Sha256": sha256,
        "Cache-Control": "private, max-age=31536000, immutable",
    }
    if model_format == "onnx":
        headers["X-Onnx-Sha256"] = sha256
    return Response(content, media_type="application/octet-stream", headers=headers)
