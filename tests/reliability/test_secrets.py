"""No secret in any log line or error message, whatever the input: a malformed token is refused without being
echoed, and the agent stops on it instead of retrying as if the server were down."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

from fbnet_core.client import AuthError, ProfilerClient


def _pasted_file(server_url: str, secret: str) -> str:
    """What an operator pastes by mistake: the whole dev-tokens JSON file instead of the enroll token."""
    return json.dumps({"url": server_url, "admin_token": secret, "enroll_token": "e" * 43}, indent=2)


@pytest.mark.parametrize(
    "token", ['{\n  "admin_token": "SECRET"\n}', "SECRET\n", "two SECRET words", "SECRET\x00"]
)
def test_the_client_refuses_a_malformed_token_without_echoing_it(token):
    with pytest.raises(AuthError) as refused:
        ProfilerClient("http://127.0.0.1:9", token)
    assert "malformed token" in str(refused.value) and "SECRET" not in str(refused.value)


def test_an_agent_given_a_pasted_file_as_its_token_stops_at_once_and_logs_no_secret(live_server, tmp_path):
    secret = f"admin-{secrets.token_urlsafe(16)}"
    env = {**os.environ, "PROFILER_STATE_DIR": str(tmp_path),
           "PROFILER_ENROLL_TOKEN": _pasted_file(live_server.url, secret)}  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "device_agents",
        "run",
        "--server",
        live_server.url,
        "--name",
        "pasted",
        "--once",
    ]
    # The timeout only bounds an agent that retries for ever (that is the failure).
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "malformed token" in done.stderr, done.stderr
    assert secret not in done.stdout + done.stderr
    assert "unreachable" not in done.stderr  # not taken for a server that is down
    assert secret not in live_server.log_path.read_text()
