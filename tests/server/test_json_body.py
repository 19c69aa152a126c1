"""The ingest route's own body parsing (pydantic's JSON parser): FastAPI's 422s, and the body kept in OpenAPI."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from profiler_server.app import create_app
from profiler_server.config import Settings
from profiler_server.example_ops import RUNTIME

ADMIN, ENROLL = "a" * 20, "e" * 20


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('json_body') / 'db.sqlite3'}"
    from db.migrate import upgrade

    upgrade(url)
    with TestClient(create_app(Settings(database_url=url, admin_token=ADMIN, enroll_token=ENROLL))) as client:
        device = client.post(
            "/devices/register",
            json={"name": "d", "platform": "p"},
            headers={"Authorization": f"Bearer {ENROLL}"},
        ).json()
        client.headers["Authorization"] = f"Bearer {device['token']}"
        yield client


@pytest.mark.parametrize(
    ("content", "content_type", "field"),
    [
        (b"{not json", "application/json", "body"),
        (b"", "application/json", "body"),
        (b'{"results": []}', "application/json", "results"),
        (b'{"results": [{"key": "k"}]}', None, "results[0].result_id"),
        (json.dumps({"results": [{"samples_us": [1.0], "runtime": RUNTIME}]}).encode(), "text/plain", "body"),
    ],
    ids=["malformed", "empty", "no-results", "no-content-type-parsed-as-json", "not-declared-json"],
)
def test_bad_bodies_are_422_naming_the_field(agent, content, content_type, field):
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = agent.post("/agent/measurements", content=content, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_unauthenticated_is_401_before_the_body_is_read(agent):
    response = agent.post("/agent/measurements", content=b"{not json", headers={"Authorization": ""})
    assert response.status_code == 401 and response.json()["field"] == "Authorization"


def test_openapi_documents_the_model_without_references(agent):
    body = agent.app.openapi()["paths"]["/agent/measurements"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert "$ref" not in json.dumps(schema) and body["required"] is True
    item = schema["properties"]["results"]["items"]
    assert set(item["required"]) == {"result_id", "key", "onnx_sha256", "samples_us", "runtime"}
    assert "runtime_version" in item["properties"]["runtime"]["properties"]
