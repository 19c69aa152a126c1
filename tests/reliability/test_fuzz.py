"""Schemathesis fuzzing of the OpenAPI schema against a real server: valid and invalid requests, no 5xx.

Each operation is called with a token its rule allows (RULES in test_auth_matrix.py), so the fuzzer gets past
authentication to validation, the services and the database. Bounded: FUZZ_EXAMPLES per operation and
generation mode (schema-valid, schema-violating), no shrinking. Hypothesis drives schemathesis's strategies
directly: schemathesis's pytest plugin does not run under this pytest version.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from profiler_server.app import create_app
from profiler_server.config import Settings
from profiler_server.local_server import LiveServer
from tests.reliability.test_auth_matrix import RULES
from tests.server.helpers import Setup, unique

FUZZ_EXAMPLES = 10


def _can_be_violated(operation: dict) -> bool:
    """Whether a request can break the schema at all (a body, a query, or a constrained path parameter)."""
    if "requestBody" in operation:
        return True
    for parameter in operation.get("parameters", []):
        constraints = set(parameter.get("schema", {})) - {"type", "title", "description"}
        if parameter["in"] == "query" or constraints or parameter.get("schema", {}).get("type") != "string":
            return True
    return False


def _cases() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) for every operation of the app's schema: schema-valid, and schema-violating ones."""
    settings_ = Settings(database_url="sqlite://", admin_token="a" * 20, enroll_token="e" * 20)
    paths = create_app(settings_).openapi()["paths"]
    cases = []
    for path, item in paths.items():
        for method, operation in item.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if _can_be_violated(operation):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return sorted(cases)


CASES = _cases()


@pytest.fixture(scope="module")
def fuzz_world(backend, _new_database, tmp_path_factory):
    # A private server without the per-token rate limit (the fuzzer sends bursts), filled with junk by the test.
    server = LiveServer(
        backend, _new_database(backend), tmp_path_factory.mktemp("fuzz"), {"rate_limit_per_s": 0}
    )
    server.start()
    s = Setup(server, unique, n_ops=3)
    tokens = {"admin": server.admin_token, "enroll": server.enroll_token, "device": s.device_token}
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    yield server, s, tokens, schema
    server.close()


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_no_request_the_schema_allows_or_forbids_makes_a_5xx(fuzz_world, method, path, mode):
    server, s, tokens, schema = fuzz_world
    allowed = RULES[(method, path)]
    role = "device" if "device" in allowed else sorted(allowed)[0]
    headers = {"Authorization": f"Bearer {tokens[role]}"} if role in tokens else {}
    fixed = (
        {"device": s.device_name} if path.startswith("/lut/") else None
    )  # reach the LUT with fuzzed queries
    failures: list[str] = []

    @given(case=schema[path][method].as_strategy(mode, path_parameters=fixed))
    @settings(
        max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def fuzz(case) -> None:
        response = case.call(base_url=server.url, headers=headers, timeout=30)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} {case.body!r:.300}: {response.status_code} "
                            f"{response.text[:300]}")  # fmt: skip

    fuzz()
    assert not failures, "\n".join(failures[:5])
