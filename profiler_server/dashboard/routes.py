"""Dashboard pages: `/` (devices, coverage, validation, recent tasks and failures) and one page per device.

Read-only and tokenless by design (it shows no secrets: no tokens, no device attributes); turn it off with
`PROFILER_DASHBOARD_ENABLED=false` where even latency figures must stay private.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session

from db.models_validation import SearchSpace
from profiler_server import __version__
from profiler_server.clock import utcnow
from profiler_server.dashboard import charts, queries
from profiler_server.deps import DatabaseDep
from profiler_server.services.lut import LutCache, lut_version, medians_us

STATIC_PATH = "/dashboard/static"


def _ago(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    seconds = max(0, int((now - at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _make_templates() -> Jinja2Templates:
    # Autoescape everything, whatever the file extension: device names, keys and failure reasons are user data.
    env = Environment(
        loader=PackageLoader("profiler_server.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["us"] = charts.format_us
    env.globals.update(static=STATIC_PATH, version=__version__, ago=_ago)
    return Jinja2Templates(env=env)


templates = _make_templates()
router = APIRouter(include_in_schema=False)


def _render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"now": utcnow(), **context}, status_code=status_code)


def _index_context(session: Session) -> dict[str, Any]:
    return {
        "devices": queries.devices(session, utcnow()),
        "spaces": queries.spaces(session),
        "tasks": queries.recent_tasks(session),
        "failures": queries.recent_failures(session),
    }


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, database: DatabaseDep) -> HTMLResponse:
    return _render(request, "index.html", await database.read(_index_context))


@router.get("/dashboard/devices/{name}", response_class=HTMLResponse)
async def device_page(
    request: Request,
    name: str,
    database: DatabaseDep,
    space: Annotated[str | None, Query(description="the search space of the heat map")] = None,
) -> HTMLResponse:
    cache: LutCache = request.app.state.lut_cache
    context = await database.read(lambda session: _device_context(session, cache, name, space))
    if "missing" in context:
        return _render(request, "not_found.html", {"what": context["missing"]}, status_code=404)
    return _render(request, "device.html", context)


def _device_context(session: Session, cache: LutCache, name: str, space: str | None) -> dict[str, Any]:
    """The device page's context, or {"missing": what} for a 404."""
    found = queries.devices(session, utcnow(), name)
    if not found:
        return {"missing": f"device {name!r}"}
    device = found[0]
    all_spaces = queries.spaces(session)
    chosen = _choose_space(all_spaces, device, space)
    if space is not None and chosen is None:
        return {"missing": f"search space {space!r}"}
    context: dict[str, Any] = {"device": device, "spaces": all_spaces, "space": chosen}
    if chosen is not None:
        keys = [k for layer in chosen.layers for k in layer if k is not None] + list(chosen.fixed_keys)
        medians = _space_medians(session, cache, device.id, device.name, keys)
        pending = queries.pending_states(session, device.id, keys, utcnow())
        # One colour scale for the layers and the fixed ops (stem, head, classifier): the last row.
        rows = charts.heat_map([*chosen.layers, chosen.fixed_keys], medians, pending)
        context["grid"], context["fixed"] = rows[:-1], rows[-1]
        context["shapes"] = [charts.layer_shape(layer) for layer in chosen.layers]
        context["legend"] = charts.legend_stops()
    runs = queries.validation_runs(session, device.id)
    context["runs"] = [(run, charts.scatter([p.model_dump() for p in run.points])) for run in runs]
    context["tasks"] = queries.recent_tasks(session, device.id)
    context["failures"] = queries.recent_failures(session, device.id)
    return context


def _space_medians(
    session: Session, cache: LutCache, device_id: int, device_name: str, keys: list[str]
) -> dict[str, float]:
    """The heat map's medians: from the LUT already rendered for the current version (as `/lut` serves it), else
    only the space's entries - never a whole LUT rendered for a tokenless page (a device measuring changes its
    version with every post)."""
    conn = session.connection()
    cached = cache.cached(lut_version(conn, device_name))
    if cached is not None:
        return {k: cached.entries[k]["median_us"] for k in keys if k in cached.entries}
    return medians_us(conn, device_id, keys)


def _choose_space(
    all_spaces: list[SearchSpace], device: queries.DeviceRow, wanted: str | None
) -> SearchSpace | None:
    """The space asked for, else the one with the most measured entries on this device, else the first."""
    if wanted is not None:
        return next((s for s in all_spaces if s.name == wanted), None)
    if not all_spaces:
        return None
    measured = {c.space: c.measured for c in device.coverage}
    return max(all_spaces, key=lambda s: measured.get(s.name, 0))
