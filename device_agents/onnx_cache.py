"""ONNX models downloaded once per agent, stored under their sha256 (the server's content address)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from device_agents.errors import OpFailedError


class OnnxCache:
    def __init__(self, folder: Path, fetch: Callable[[str], bytes]) -> None:
        self._folder = folder
        self._fetch = fetch  # key -> the model's bytes (retries are the caller's business)
        self.downloads = 0

    def path_for(self, key: str, sha256: str) -> Path:
        path = self._folder / f"{sha256}.onnx"
        if path.exists():
            return path
        content = self._fetch(key)
        actual = hashlib.sha256(content).hexdigest()
        if actual != sha256:
            raise OpFailedError(f"the server's model for {key} has sha256 {actual[:12]}..., the task says {sha256[:12]}...")
        self._folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(content)
        os.replace(temporary, path)  # atomic: a concurrent agent sharing the cache never sees half a file
        self.downloads += 1
        return path
