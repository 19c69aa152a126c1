"""Liveness/readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from db.models import Device, LutEntry, Task
from profiler_server import __version__
from profiler_server.deps import DatabaseDep
from profiler_server.openapi import errors
from profiler_server.schemas import Health

router = APIRouter(tags=["health"])


def _ping(session: Session) -> None:
    session.execute(text("SELECT 1"))


@router.get("/healthz", response_model=Health, responses={**errors(429), 503: {"model": Health}})
async def healthz(database: DatabaseDep) -> JSONResponse:
    try:
        await database.read(_ping)
    except SQLAlchemyError as exc:
        body = Health(status="unavailable", database=f"error: {type(exc).__name__}", version=__version__)
        return JSONResponse(body.model_dump(), status_code=503)
    return JSONResponse(Health(status="ok", database="ok", version=__version__).model_dump())


def _gauges(session: Session) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    tasks = session.execute(select(Task.status, func.count()).group_by(Task.status)).all()
    return {
        "devices": {(): float(session.scalar(select(func.count()).select_from(Device)) or 0)},
        "lut_entries": {(): float(session.scalar(select(func.count()).select_from(LutEntry)) or 0)},
        "tasks": {(("status", str(status)),): float(n) for status, n in tasks},
    }


@router.get("/metrics", response_class=PlainTextResponse, responses=errors(429, 503))
async def metrics(request: Request, database: DatabaseDep) -> PlainTextResponse:
    gauges = await database.read(_gauges)
    return PlainTextResponse(
        request.app.state.metrics.render(gauges), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
