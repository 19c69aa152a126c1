"""A JSON request body parsed by pydantic's own parser, documented in OpenAPI as if FastAPI had parsed it.

FastAPI parses a body model with `json.loads` and then validates the Python objects, building every object twice;
pydantic's `model_validate_json` validates while it parses, which is several times cheaper on an ingest batch
(bench/bench_server.py measures the ingest path). A route takes the model from `json_body(Model)` (a dependency) and declares its request body with
`openapi_extra=openapi_json_body(Model)`, so clients and the schemathesis fuzzing still see the model's schema.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

M = TypeVar("M", bound=BaseModel)
# Bodies larger than this are parsed in a worker thread: parsing megabytes on the event loop would stall every
# other request (a 57 MiB batch takes seconds).
PARSE_INLINE_MAX_BYTES = 64 * 1024


def json_body(model: type[M]) -> Callable[[Request], Coroutine[Any, Any, M]]:
    """A dependency returning the request's body as `model`; invalid bodies are FastAPI's usual 422."""

    async def parse(request: Request) -> M:
        body = await request.body()
        as_json = _is_json(request.headers.get("content-type"))
        if len(body) <= PARSE_INLINE_MAX_BYTES:
            return _validate(model, body, as_json)
        return await run_in_threadpool(_validate, model, body, as_json)

    return parse


def _validate(model: type[M], body: bytes, as_json: bool) -> M:
    try:
        if as_json:
            return model.model_validate_json(body)
        # Not declared as JSON: refused as FastAPI refuses it (the raw bytes are not an object).
        return model.model_validate(body)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=body) from exc


def _is_json(content_type: str | None) -> bool:
    # As FastAPI decides it: no content type, application/json or application/*+json.
    if not content_type:
        return True
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def openapi_json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The `openapi_extra` documenting `model` as the required JSON request body (its schema inlined: OpenAPI
    would resolve pydantic's `#/$defs/...` references against the whole document)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    return {
        "requestBody": {
            "content": {"application/json": {"schema": _inline(schema, definitions)}},
            "required": True,
        }
    }


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with every `{"$ref": "#/$defs/Name", ...}` replaced by that definition (the models are not
    recursive, so this ends)."""
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return _inline({**definitions[name], **siblings}, definitions)
    return {key: _inline(value, definitions) for key, value in node.items()}
