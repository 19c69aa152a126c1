"""FastAPI dependencies: the database and the caller's identity."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.types import Scope

from db.models import Device
from profiler_server.config import Settings, get_settings
from profiler_server.database import Database
from profiler_server.errors import Forbidden, Unauthorized
from profiler_server.security import Principal, Role, same_secret, token_sha256
from profiler_server.token_cache import VerifiedTokens

SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_database(request: Request) -> Database:
    # Async: no worker thread for a lookup. Routes do their database work through it (profiler_server.database).
    return request.app.state.database


DatabaseDep = Annotated[Database, Depends(get_database)]


def _device_for_digest(session: Session, token_digest: str) -> Principal | None:
    row = session.execute(select(Device.id).where(Device.token_sha256 == token_digest)).first()
    return None if row is None else Principal(Role.device, device_id=row.id)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; 401 when missing or malformed."""
    if not authorization:
        raise Unauthorized("missing Authorization: Bearer <token> header")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return token


def known_principal(
    settings: Settings, tokens: VerifiedTokens, token: str, token_digest: str
) -> Principal | None:
    """Who the token belongs to, if that is known without the database: the admin or enroll token, or a device
    token verified recently."""
    if settings.admin_token and same_secret(token, settings.admin_token.get_secret_value()):
        return Principal(Role.admin)
    if settings.enroll_token and same_secret(token, settings.enroll_token.get_secret_value()):
        return Principal(Role.enroll)
    return tokens.get(token_digest)


def token_known_in_memory(scope: Scope, token: str) -> bool:
    """Whether `token` is the admin's, the enroll token or a device token this process has verified (no database;
    for the rate limit, which spares known callers the address's bucket)."""
    state = scope["app"].state
    tokens: VerifiedTokens = state.verified_tokens
    digest = token_sha256(token)
    return known_principal(state.settings, tokens, token, digest) is not None or tokens.seen(digest)


async def get_principal(request: Request) -> Principal:
    # Async, reading the header directly, with a worker thread only for a device token not verified recently:
    # this runs on every request, and FastAPI's parameter machinery and thread hops cost more than the check.
    token = bearer_token(request.headers.get("authorization"))
    digest = token_sha256(token)
    tokens: VerifiedTokens = request.app.state.verified_tokens
    principal = known_principal(request.app.state.settings, tokens, token, digest)
    if principal is not None:
        return principal
    # A read of its own, before the route does its work (and before it reads the body).
    database: Database = request.app.state.database
    principal = await database.read(lambda session: _device_for_digest(session, digest))
    if principal is None:
        raise Unauthorized("unknown token")
    tokens.put(digest, principal)
    return principal


def _require(*roles: Role) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            allowed = " or ".join(f"{r.value} token" for r in roles)
            raise Forbidden(f"this endpoint needs an {allowed}; got a {principal.role.value} token")
        return principal

    return dependency


AdminPrincipal = Annotated[Principal, Depends(_require(Role.admin))]
EnrollPrincipal = Annotated[Principal, Depends(_require(Role.enroll))]
DevicePrincipal = Annotated[Principal, Depends(_require(Role.device))]
# Reading the LUT, devices and op models: admins and agents alike (not the enroll token: it only registers).
READER_ROLES = (Role.admin, Role.device)
ReaderPrincipal = Annotated[Principal, Depends(_require(*READER_ROLES))]
