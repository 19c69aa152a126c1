"""ASGI middleware: refuse request bodies over the limit with 413, counting what is read, without buffering.

A declared `Content-Length` over the limit is refused before anything is read. Otherwise the body passes through
as the app reads it - only after the route has authenticated the caller (routes read bodies through
`json_body`, after their principal) - and the read that crosses the limit raises `PayloadTooLarge`, which the
error handlers answer with 413: a chunked body, or one that lies about its length, is cut off there.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from profiler_server.errors import PayloadTooLarge


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._reject(send)
            return
        size = 0

        async def receive_counted() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_body_bytes:
                    raise PayloadTooLarge(self._detail(), field="body")
            return message

        await self.app(scope, receive_counted, send)

    def _detail(self) -> str:
        return f"body: request body exceeds {self.max_body_bytes} bytes"

    async def _reject(self, send: Send) -> None:
        payload = json.dumps({"detail": self._detail(), "field": "body"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
