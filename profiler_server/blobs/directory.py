"""The default blob store: a directory, `<root>/<first two hex digits>/<sha256>`, one file per model.

Every replica of a server must see the same directory (a shared volume).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from profiler_server.blobs.store import SHA256_HEX_CHARS, BlobMissing, StoredBlob, check_sha256


class DirectoryBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / check_sha256(sha256)

    def put(self, sha256: str, content: bytes) -> None:
        """Atomic (a temporary file renamed) and durable (fsynced); a no-op if present."""
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
        path = self.path(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def stored(self) -> Iterator[StoredBlob]:
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or len(folder.name) != 2:
                continue
            for path in sorted(folder.iterdir()):
                if len(path.name) == SHA256_HEX_CHARS and path.name.startswith(folder.name):
                    stat = path.stat()
                    yield StoredBlob(path.name, stat.st_size, stat.st_mtime)


def default_blob_dir(database_url: str) -> Path:
    """Where models live unless `PROFILER_BLOB_DIR` says: next to a SQLite file (`<file>.blobs`), else
    `./profiler-blobs`."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(f"{url.database}.blobs")
    return Path("profiler-blobs")
