"""Getting a device's LUT from the profiler server: request the missing entries, pull, cache on disk.

All HTTP goes through `fbnet_core.client.ProfilerClient`. Pulled LUTs are cached under
`~/.cache/fbnet-lut/` (or `$FBNET_LUT_CACHE`), one file per (server, device) with the server's ETag, so a search
can run offline from the last LUT it saw.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fbnet_core.client import Lut, NotFoundError, OpUpload, ProfilerClient, ServerUnavailable
from fbnet_core.errors import LutFormatError
from fbnet_core.formats.lut_file import read_lut_file, write_lut_file
from fbnet_core.keys import Op
from search_client.errors import LutUnavailableError
from search_client.space.export import export_onnx

CACHE_ENV = "FBNET_LUT_CACHE"


def default_cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "fbnet-lut"


@dataclass(frozen=True)
class CachedLut:
    """A LUT as pulled: the `GET /lut/{device}` body plus where and when it came from."""

    server: str
    device: str
    lut_version: int
    etag: str
    fetched_at: str
    entries: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class LutCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_dir()

    def path(self, server: str, device: str) -> Path:
        # Readable and filesystem-safe: "http://127.0.0.1:8000" + "pixel7" -> 127.0.0.1_8000__pixel7.json
        server_part = re.sub(r"[^A-Za-z0-9.-]+", "_", server.split("://", 1)[-1]).strip("_")
        return self.root / f"{server_part}__{device}.json"

    def load(self, server: str, device: str) -> CachedLut | None:
        path = self.path(server, device)
        if not path.is_file():
            return None
        body = read_lut_file(path)
        try:
            return CachedLut(**body)
        except TypeError as exc:
            raise LutFormatError(f"cached LUT {path} is malformed ({exc}); delete it and pull again") from exc

    def store(self, lut: CachedLut) -> Path:
        path = self.path(lut.server, lut.device)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_lut_file(path, lut.to_json())
        return path


@dataclass(frozen=True)
class PullResult:
    lut: CachedLut
    from_cache: bool  # True when the server was unreachable and the cached copy was used
    changed: bool  # False when the server's ETag equals the cached one
    offline_reason: str | None = None


def pull_lut(client: ProfilerClient, device: str, cache: LutCache) -> PullResult:
    """The device's full LUT from the server, refreshing the cache; the cached copy when the server is down."""
    cached = cache.load(client.base_url, device)
    known = None if cached is None else Lut(device, cached.lut_version, cached.entries, cached.etag)
    try:
        lut = client.get_lut(device, known=known)
    except ServerUnavailable as exc:
        if cached is None:
            raise LutUnavailableError(
                f"{client.base_url} is unreachable and no cached LUT of {device!r} exists in {cache.root}"
            ) from exc
        return PullResult(cached, from_cache=True, changed=False, offline_reason=str(exc))
    fresh = CachedLut(
        server=client.base_url,
        device=device,
        lut_version=lut.lut_version,
        etag=lut.etag,
        fetched_at=datetime.now(UTC).isoformat(),
        entries=lut.entries,
    )
    cache.store(fresh)
    return PullResult(fresh, from_cache=False, changed=cached is None or cached.etag != lut.etag)


def missing_keys(
    client: ProfilerClient, device: str, keys: Sequence[str], stale: Mapping[str, str] | None = None
) -> list[str]:
    """The keys among `keys` that the device's LUT has no entry for yet, or (`stale`: key -> result id) whose
    entry is still that result: a re-measurement asked for and not done yet."""
    lut = client.get_lut(device, keys=list(keys))
    old = stale or {}
    superseded = [key for key, entry in lut.entries.items() if key in old and entry["result_id"] == old[key]]
    return sorted([*lut.missing, *superseded])


@dataclass(frozen=True)
class RequestReport:
    needed: int
    missing: list[str]
    uploaded: list[str]
    queued: int
    already_queued: int


def request_lut(client: ProfilerClient, device: str, ops: Sequence[Op]) -> RequestReport:
    """Queue profiling jobs for every op of `ops` the device's LUT lacks, uploading the ONNX files the server
    does not have yet or whose model file `profiler-server gc` removed (exported deterministically, see
    search_client/space/export.py). Needs the admin token."""
    missing = missing_keys(client, device, [op.key for op in ops])
    missing_set = set(missing)
    to_upload = [op for op in ops if op.key in missing_set and not _server_has_model(client, op.key)]
    receipt = client.upload_ops(OpUpload(op.key, op.spec, export_onnx(op.spec)) for op in to_upload)
    uploaded = [*receipt.created, *receipt.existing]  # existing: an op whose removed model file came back
    if not missing:
        return RequestReport(len(ops), [], uploaded, 0, 0)
    jobs = client.create_jobs(device, missing)
    return RequestReport(len(ops), missing, uploaded, jobs.queued, jobs.already_queued)


def _server_has_model(client: ProfilerClient, key: str) -> bool:
    """Whether an agent can download the op's model: the op is known and `profiler-server gc` has not removed its
    file (an upload of the same op brings the file back)."""
    try:
        op = client.get_op(key)
    except NotFoundError:
        return False
    return not op.get("model_removed", False)


class Waiter(Protocol):
    """How a caller waits for the agent: `wait_for_entries`, or a variant of it that draws progress."""

    def __call__(
        self,
        client: ProfilerClient,
        device: str,
        keys: list[str],
        timeout_s: float,
        poll_s: float,
        *,
        stale: Mapping[str, str] | None = None,
    ) -> list[str]: ...


def wait_for_entries(
    client: ProfilerClient,
    device: str,
    keys: Sequence[str],
    timeout_s: float,
    poll_s: float = 2.0,
    on_progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stale: Mapping[str, str] | None = None,
) -> list[str]:
    """Poll until the LUT has every key (with a result other than `stale`'s, see `missing_keys`) or `timeout_s`
    passes; returns the keys still missing."""
    deadline = clock() + timeout_s
    while True:
        missing = missing_keys(client, device, keys, stale)
        if on_progress is not None:
            on_progress(len(keys) - len(missing), len(keys))
        if not missing or clock() >= deadline:
            return missing
        sleep(poll_s)
