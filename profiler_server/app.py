"""The FastAPI application: wiring only (settings, database, middleware, routes, error handlers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from db.session import make_engine
from profiler_server import __version__, dashboard
from profiler_server.body_limit import BodyLimitMiddleware
from profiler_server.config import Settings
from profiler_server.database import Database
from profiler_server.deps import token_known_in_memory
from profiler_server.errors import install_error_handlers
from profiler_server.lut_not_modified import LutNotModifiedMiddleware
from profiler_server.metrics import Metrics, MetricsMiddleware
from profiler_server.openapi import install_openapi
from profiler_server.ratelimit import RateLimitMiddleware
from profiler_server.routes import agent, devices, health, jobs, lut, measurements, ops, spaces, validations
from profiler_server.services.lut import LutCache
from profiler_server.storage import make_storage
from profiler_server.token_cache import VerifiedTokens


def create_app(settings: Settings) -> FastAPI:
    engine = make_engine(
        settings.database_url,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        pool_size=settings.db_connections,
        pool_timeout_s=settings.db_queue_timeout_s,
    )

    storage = make_storage(engine)
    database = Database(storage, settings.db_connections, settings.db_queue_timeout_s)
    lut_versions = storage.make_lut_versions(database)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        lut_versions.close()
        engine.dispose()

    # /docs and /redoc from assets the package ships (a server on an offline network still shows them), not a CDN.
    app = FastAPIOffline(title="fbnet-lut profiler server", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.database = database
    app.state.blobs = settings.blob_store()
    app.state.metrics = Metrics()
    app.state.lut_cache = LutCache()
    app.state.lut_versions = lut_versions
    app.state.verified_tokens = VerifiedTokens()
    install_error_handlers(app)
    # Added innermost first: metrics see every response (the rate limit's 429, the body limit's 413, the fast
    # path's 304), and the rate limit refuses before a body is read. No middleware reads the body: a route reads
    # it after authenticating the caller, through both limits' counting.
    app.add_middleware(LutNotModifiedMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
    app.add_middleware(
        RateLimitMiddleware,
        rate_per_s=settings.rate_limit_per_s,
        burst=settings.rate_limit_burst,
        anonymous_rate_per_s=settings.anonymous_rate_limit_per_s,
        anonymous_burst=settings.anonymous_rate_limit_burst,
        exempt_token=admin_token,
        known_token=token_known_in_memory,
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    for module in (health, devices, ops, jobs, agent, lut, measurements, spaces, validations):
        app.include_router(module.router)
    if settings.dashboard_enabled:
        dashboard.install(app)
    install_openapi(app)
    return app
