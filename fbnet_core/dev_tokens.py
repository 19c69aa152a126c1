"""Dev-mode tokens on disk: written by `profiler-server serve --dev`, read by the other CLIs.

Stdlib only (agents import it without the server's dependencies). The file is
`$PROFILER_STATE_DIR/dev-tokens.json` (default `~/.config/fbnet-lut/`), mode 0600, keyed by server URL:
`{"servers": {"http://127.0.0.1:8000": {"admin_token", "enroll_token", "written_at"}}, "latest": "<url>"}`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

FILE_NAME = "dev-tokens.json"


@dataclass(frozen=True, slots=True)
class DevTokens:
    server_url: str
    admin_token: str
    enroll_token: str


def state_dir() -> Path:
    configured = os.environ.get("PROFILER_STATE_DIR")
    return Path(configured) if configured else Path.home() / ".config" / "fbnet-lut"


def tokens_path() -> Path:
    return state_dir() / FILE_NAME


def normalise_url(url: str) -> str:
    return url.rstrip("/")


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"servers": {}}
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot read dev tokens from {path}: {exc}") from exc
    return data if isinstance(data, dict) and isinstance(data.get("servers"), dict) else {"servers": {}}


def write_dev_tokens(server_url: str, admin_token: str, enroll_token: str) -> Path:
    path = tokens_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _load(path)
    url = normalise_url(server_url)
    data["servers"][url] = {
        "admin_token": admin_token,
        "enroll_token": enroll_token,
        "written_at": datetime.now(UTC).isoformat(),
    }
    data["latest"] = url
    # Create with 0600 from the start: the tokens are never world-readable, not even briefly.
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def read_dev_tokens(server_url: str | None = None) -> DevTokens | None:
    """Tokens for `server_url` (or for the server started last when None); None if there are none."""
    data = _load(tokens_path())
    url = normalise_url(server_url) if server_url else data.get("latest")
    entry = data["servers"].get(url) if url else None
    if not isinstance(entry, dict):
        return None
    return DevTokens(server_url=url, admin_token=entry["admin_token"], enroll_token=entry["enroll_token"])
