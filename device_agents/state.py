"""Where an agent keeps what must survive a restart: its device token (mode 0600), its result spool and its
ONNX cache. Default `$PROFILER_STATE_DIR/agents/<name>/` (the same root as the server's dev tokens)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from device_agents.errors import AgentError


@dataclass(frozen=True)
class Credentials:
    server_url: str
    name: str
    device_token: str


@dataclass(frozen=True)
class AgentPaths:
    root: Path

    @classmethod
    def for_agent(cls, state_dir: Path, name: str) -> AgentPaths:
        return cls(state_dir / "agents" / name)

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    @property
    def spool(self) -> Path:
        return self.root / "spool.jsonl"

    @property
    def onnx_cache(self) -> Path:
        return self.root / "onnx"


def load_credentials(paths: AgentPaths) -> Credentials | None:
    try:
        data = json.loads(paths.credentials.read_text())
        return Credentials(str(data["server_url"]), str(data["name"]), str(data["device_token"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AgentError(f"cannot read the agent's credentials {paths.credentials}: {exc}") from exc


def save_credentials(paths: AgentPaths, credentials: Credentials) -> None:
    """Written 0600 from creation (never briefly world-readable), then atomically renamed into place."""
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = paths.credentials.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(credentials.__dict__, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o600)
    os.replace(temporary, paths.credentials)


def default_state_dir() -> Path:
    """$PROFILER_STATE_DIR or ~/.config/fbnet-lut: where `profiler-server serve --dev` writes its tokens too."""
    from fbnet_core.dev_tokens import state_dir

    return state_dir()
