"""The read-only dashboard served at `/`: server-rendered HTML (jinja2, autoescaped), static assets shipped here.

`install(app)` adds its routes and static files; `create_app` calls it unless `PROFILER_DASHBOARD_ENABLED=false`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from profiler_server.dashboard.routes import STATIC_PATH, router


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(
        STATIC_PATH,
        StaticFiles(packages=[("profiler_server.dashboard", "static")]),
        name="dashboard-static",
    )
