"""Op models on disk, content-addressed: `<root>/<first two hex digits>/<sha256>`, written once, never changed.

The database keeps which models exist (`onnx_models`: sha256, size); their bytes live here, so that whole
networks' weights do not fill the database. A model is written (and fsynced) before the database row that names
it is committed: a crash in between leaves an unreferenced file, which `profiler-server gc` removes, never a row
without its file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

SHA256_HEX_CHARS = 64


class BlobMissing(LookupError):
    """No file for that sha256 (removed by `gc`, or the directory is not the server's)."""


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != SHA256_HEX_CHARS or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, sha256: str, content: bytes) -> None:
        """Store `content` under `sha256` (the caller's hash of it); atomic and durable, a no-op if present."""
        path = self.path(sha256)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise BlobMissing(sha256) from exc

    def delete(self, sha256: str) -> int:
        """Remove the file; returns the bytes freed (0 if it was not there)."""
        path = self.path(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def stored(self) -> Iterator[tuple[str, int, float]]:
        """(sha256, size in bytes, modification time) of every file stored (half-written ones left out)."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or len(folder.name) != 2:
                continue
            for path in sorted(folder.iterdir()):
                if len(path.name) == SHA256_HEX_CHARS and path.name.startswith(folder.name):
                    stat = path.stat()
                    yield path.name, stat.st_size, stat.st_mtime


def default_blob_dir(database_url: str) -> Path:
    """Where models live unless `PROFILER_BLOB_DIR` says: next to a SQLite file (`<file>.blobs`), else
    `./profiler-blobs`."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(f"{url.database}.blobs")
    return Path("profiler-blobs")
