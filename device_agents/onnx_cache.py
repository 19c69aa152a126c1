"""Models downloaded once per agent (ONNX, or the op compiled for the agent's runtime), stored under their
sha256 (the server's content address) with their format's suffix, the cache bounded in size: past `max_bytes`,
the models used least recently go first (one in use is never removed)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from device_agents.errors import OpFailedError
from fbnet_core.model_formats import DEFAULT_FORMAT, FORMAT_SUFFIX

DEFAULT_MAX_BYTES = 1 << 30


class OnnxCache:
    def __init__(self, folder: Path, fetch: Callable[[str, str], bytes], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._folder = folder
        self._fetch = fetch  # (key, format) -> the model's bytes (retries are the caller's business)
        self._max_bytes = max_bytes
        self.downloads = 0

    def path_for(self, key: str, sha256: str, model_format: str = DEFAULT_FORMAT) -> Path:
        path = self._folder / f"{sha256}{FORMAT_SUFFIX[model_format]}"
        if path.exists():
            os.utime(path)  # used now: the last to be evicted
            return path
        content = self._fetch(key, model_format)
        actual = hashlib.sha256(content).hexdigest()
        if actual != sha256:
            raise OpFailedError(f"the server's model for {key} has sha256 {actual[:12]}..., the task says {sha256[:12]}...")
        self._folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(content)
        os.replace(temporary, path)  # atomic: a concurrent agent sharing the cache never sees half a file
        self.downloads += 1
        self._evict(keep=path)
        return path

    def _evict(self, keep: Path) -> None:
        """Remove the least recently used models until the cache fits, `keep` (about to be measured) aside."""
        entries = []
        models = (path for suffix in FORMAT_SUFFIX.values() for path in self._folder.glob(f"*{suffix}"))
        for path in models:
            try:
                stat = path.stat()
            except FileNotFoundError:  # another agent sharing the cache removed it
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self._max_bytes:
                break
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size
