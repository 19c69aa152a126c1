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

from fbnet_core.client import Device, Lut, NotFoundError, OpUpload, ProfilerClient, ServerUnavailable
from fbnet_core.errors import LutFormatError
from fbnet_core.formats.lut_file import read_lut_file, write_lut_file
from fbnet_core.keys import Op
from fbnet_core.model_formats import FORMAT_SUFFIX, check_format
from search_client.errors import FormatMismatchError, LutUnavailableError, UnknownDeviceError

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
    model_format: str = "onnx"
    compiled: int = 0  # ops compiled to `model_format` and uploaded (new ones and existing ones alike)


def registered_device(
    client: ProfilerClient,
    device: str,
    wait_s: float = 0.0,
    poll_s: float = 0.5,
    on_wait: Callable[[], None] | None = None,
) -> Device:
    """The device as its agent registered it. An agent started a moment ago may not have registered yet: this
    waits up to `wait_s` for it (`on_wait` is called once, when the first look finds nothing)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return client.get_device(device)
        except NotFoundError:
            if time.monotonic() >= deadline:
                waited = f" in {wait_s:.0f} s" if wait_s else ""
                raise UnknownDeviceError(
                    f"unknown device {device!r}: no agent has registered it on {client.base_url}{waited}; start "
                    f"one with: device-agent run --server {client.base_url} --device {device}"
                ) from None
        if on_wait is not None:
            on_wait()
            on_wait = None
        time.sleep(poll_s)


def device_format(client: ProfilerClient, device: str, model_format: str | None = None) -> str:
    """The model format the device registered (its agent is leased that file of each op); `model_format`, when
    given, must be that one."""
    registered = registered_device(client, device).format
    if model_format is not None and check_format(model_format) != registered:
        raise FormatMismatchError(
            f"device {device!r} registered the {registered} format, not {model_format} (its agent loads "
            f"{FORMAT_SUFFIX[registered]} files); leave the format out to use the device's"
        )
    return registered


def request_lut(
    client: ProfilerClient, device: str, ops: Sequence[Op], model_format: str | None = None
) -> RequestReport:
    """Queue profiling jobs for every op of `ops` the device's LUT lacks, uploading what the server does not have
    yet (or whose model file `profiler-server gc` removed): the ops' ONNX files (exported deterministically, see
    search_client/space/export.py) and, for a device of another format (`model_format`, default the device's
    registered one), the ops compiled for it (search_client/space/compile.py). Needs the admin token."""
    fmt = device_format(client, device, model_format)
    missing = missing_keys(client, device, [op.key for op in ops])
    missing_set = set(missing)
    server_formats = {op.key: _server_formats(client, op.key) for op in ops if op.key in missing_set}
    to_upload = [op for op in ops if op.key in missing_set and fmt not in server_formats[op.key]]
    uploaded: list[str] = []
    if to_upload:
        # torch: loaded only when ops are uploaded.
        from search_client.space.compile import compile_ops
        from search_client.space.export import export_onnx

        compiled = compile_ops([op.spec for op in to_upload], fmt) if fmt != "onnx" else [b""] * len(to_upload)
        uploads = (
            OpUpload(op.key, op.spec, export_onnx(op.spec), {fmt: data} if fmt != "onnx" else {})
            for op, data in zip(to_upload, compiled, strict=True)
        )
        receipt = client.upload_ops(uploads)
        # existing: an op whose removed model file came back, or that gained the device's format.
        uploaded = [*receipt.created, *receipt.existing]
    compiled_count = len(to_upload) if fmt != "onnx" else 0
    if not missing:
        return RequestReport(len(ops), [], uploaded, 0, 0, fmt, compiled_count)
    receipt = client.create_jobs(device, missing)
    return RequestReport(len(ops), missing, uploaded, receipt.queued, receipt.already_queued, fmt, compiled_count)


def _server_formats(client: ProfilerClient, key: str) -> set[str]:
    """The formats the server has the op's file in (none: the op is not there, or `profiler-server gc` removed its
    model file, which an upload of the same op brings back)."""
    try:
        op = client.get_op(key)
    except NotFoundError:
        return set()
    return set() if op.get("model_removed", False) else set(op["formats"])


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
