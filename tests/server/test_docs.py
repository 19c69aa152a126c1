"""/docs works on a network without internet: Swagger UI's assets come from the server itself, and the schema
declares the bearer token (Swagger's Authorize button) and each route's error answers."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import httpx

ERROR_BODY_REF = "#/components/schemas/ErrorMessage"


def test_docs_page_loads_only_assets_the_server_serves(live_server):
    page = httpx.get(f"{live_server.url}/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assets += re.findall(r"""url: ?['"]([^'"]+)['"]""", page.text)  # the schema Swagger UI loads
    assert any(asset.endswith(".js") for asset in assets) and any(asset.endswith(".css") for asset in assets)
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by this server"
        assert httpx.get(urljoin(live_server.url, asset)).status_code == 200, asset


def test_redoc_page_loads_only_local_assets(live_server):
    page = httpx.get(f"{live_server.url}/redoc")
    assert page.status_code == 200
    scripts = re.findall(r"""src=['"]([^'"]+)['"]""", page.text)
    assert scripts and all(src.startswith("/") for src in scripts)
    assert "fonts.googleapis" not in page.text
    for src in scripts:
        assert httpx.get(urljoin(live_server.url, src)).status_code == 200


def _operations(schema: dict) -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): op for path, ops in schema["paths"].items() for method, op in ops.items()}


def test_schema_declares_the_bearer_scheme_on_every_route_that_needs_a_token(live_server):
    schema = httpx.get(f"{live_server.url}/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    operations = _operations(schema)
    public = {("GET", "/healthz"), ("GET", "/metrics")}
    assert public <= set(operations)
    for where, operation in operations.items():
        if where in public:
            assert "security" not in operation
            continue
        assert operation["security"] == [{"bearerAuth": []}], where
        for status in ("401", "403", "429", "503"):
            assert operation["responses"][status]["content"]["application/json"]["schema"]["$ref"] == ERROR_BODY_REF


def test_each_route_declares_the_errors_it_gives(live_server):
    operations = _operations(httpx.get(f"{live_server.url}/openapi.json").json())
    expected = {
        ("POST", "/devices/register"): {"409", "413", "422"},
        ("POST", "/ops"): {"409", "413", "422"},
        ("GET", "/ops/{key}/model.onnx"): {"404", "410"},
        ("POST", "/jobs"): {"404", "413", "422"},
        ("POST", "/agent/measurements"): {"404", "409", "413", "422"},
        ("GET", "/lut/{device}"): {"404", "422"},
        ("PUT", "/spaces/{name}"): {"409", "413", "422"},
        ("GET", "/devices/{name}"): {"404"},
    }
    for where, statuses in expected.items():
        declared = set(operations[where]["responses"])
        assert statuses <= declared, (where, declared)
    # A body-less, parameter-less route declares no 413/422 it cannot give.
    assert not {"413", "422"} & set(operations[("GET", "/devices")]["responses"])


def test_a_declared_error_answer_has_the_declared_body(live_server):
    """What the schema promises for a 401 is what a request without a token gets."""
    response = httpx.get(f"{live_server.url}/devices")
    assert response.status_code == 401
    body = response.json()
    assert set(body) <= {"detail", "field", "errors"} and isinstance(body["detail"], str)
