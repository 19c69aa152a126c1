"""What every blob store offers: op models' bytes by sha256, written once, never changed.

The database keeps which models exist (`onnx_models`: sha256, size); their bytes live in a blob store, so that
whole networks' weights do not fill the database. A model is stored durably before the database row that names
it is committed: a crash in between leaves an unreferenced blob, which `profiler-server gc` removes, never a row
without its blob.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Protocol

from fbnet_core.errors import FbnetLutError

SHA256_HEX_CHARS = 64
_HEX_DIGITS = frozenset("0123456789abcdef")


class BlobMissing(LookupError):
    """No blob for that sha256 (removed by `gc`, or the store is not the server's)."""


class BlobStoreUnavailable(FbnetLutError):
    """The store cannot serve now (an object store unreachable, its bucket missing, access denied): nothing was
    stored or read. The server answers 503 with this message, a command line prints it as one line."""


class StoredBlob(NamedTuple):
    sha256: str
    size_bytes: int
    # When the blob was written, in seconds since the epoch: `gc` leaves young unnamed blobs (uploads in flight).
    modified_s: float


class BlobStore(Protocol):
    @property
    def location(self) -> str:
        """Where the blobs are, for messages: a folder or an `s3://bucket/prefix` URL."""
        ...

    def put(self, sha256: str, content: bytes) -> None:
        """Store `content` under `sha256` (the caller's hash of it), durably before returning; a no-op if present."""
        ...

    def get(self, sha256: str) -> bytes:
        """The blob's bytes; `BlobMissing` if there is none."""
        ...

    def delete(self, sha256: str) -> int:
        """Remove the blob; returns the bytes freed (0 if it was not there)."""
        ...

    def stored(self) -> Iterator[StoredBlob]:
        """Every blob stored (half-written ones left out), for `gc` to find those no row names."""
        ...


def check_sha256(sha256: str) -> str:
    """`sha256` itself if it is 64 lower-case hex digits, else ValueError: a key never names anything else."""
    if len(sha256) != SHA256_HEX_CHARS or not _HEX_DIGITS.issuperset(sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return sha256
