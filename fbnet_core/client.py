"""A typed Python client of the profiler server's HTTP protocol (docs/protocol.md).

httpx and the standard library only, so agents and search jobs use it without the server's dependencies.
HTTP statuses and connection failures are translated once, here, into the exception tree below:

    ProfilerError                 any failure; .status_code (None without a response), .detail, .field
    +-- ServerUrlError            a server URL that cannot be one (no http:// or https://, no host): not retried
    +-- AuthError                 401 (missing/unknown token) or 403 (token not allowed here)
    +-- NotFoundError             404 (unknown device, op key or task)
    +-- ConflictError             409 (duplicate device name, a key or sha256 that differs from the server's)
    +-- BadRequestError           400, 413, 422 (invalid input; .field names it)
    +-- ServerUnavailable         connection refused/reset, timeouts, 5xx, 429 (rate limit): retry later
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from fbnet_core import __version__
from fbnet_core.errors import FbnetLutError
from fbnet_core.model_formats import DEFAULT_FORMAT, DEFAULT_RUNTIME

DEFAULT_TIMEOUT_S = 30.0
# Keeps each POST well under the server's default body limit (64 MiB).
MAX_REQUEST_BYTES = 16 * 1024 * 1024
RESULTS_PER_REQUEST = 500
# A bearer token is one line of visible ASCII. Anything else (a pasted JSON file, a trailing newline) is refused
# before any request, naming only its length: it may hold other secrets, and httpx's own error quotes the header.
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")


class ProfilerError(FbnetLutError):
    def __init__(self, detail: str, status_code: int | None = None, field: str | None = None) -> None:
        super().__init__(f"{status_code}: {detail}" if status_code else detail)
        self.detail = detail
        self.status_code = status_code
        self.field = field


class ServerUrlError(ProfilerError):
    pass


class AuthError(ProfilerError):
    pass


class NotFoundError(ProfilerError):
    pass


class ConflictError(ProfilerError):
    pass


class BadRequestError(ProfilerError):
    pass


class ServerUnavailable(ProfilerError):
    pass


@dataclass(frozen=True, slots=True)
class OpUpload:
    key: str
    spec: Mapping[str, Any]
    onnx_bytes: bytes
    # The same op compiled for other runtimes: {format ("pte", "tflite"): the file's bytes}.
    artifacts: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RegisteredDevice:
    name: str
    token: str


@dataclass(frozen=True, slots=True)
class Coverage:
    measured: int
    queued: int
    leased: int
    failed: int


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    platform: str
    runtime: str
    format: str
    attributes: dict[str, Any]
    created_at: str
    last_seen_at: str | None
    lut_version: int
    coverage: Coverage


@dataclass(frozen=True, slots=True)
class OpsReceipt:
    created: list[str]
    existing: list[str]
    artifacts_added: int = 0


@dataclass(frozen=True, slots=True)
class JobsReceipt:
    device: str
    queued: int
    already_measured: int
    already_queued: int


@dataclass(frozen=True, slots=True)
class LeasedTask:
    task_id: int
    key: str
    spec: dict[str, Any]
    onnx_sha256: str
    attempt: int
    lease_expires_at: str
    # The device's model format and the sha256 of the op's file in it (None: the server has none).
    format: str = "onnx"
    model_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class ResultsReceipt:
    accepted: int
    duplicates: int
    failures: int


@dataclass(frozen=True, slots=True)
class Lut:
    """A device's LUT: `entries[key]` has median_us, p10_us, p90_us, mean_us, std_us, iqr_us, cv, n, unstable..."""

    device: str
    lut_version: int
    entries: dict[str, dict[str, Any]]
    etag: str
    # True when the server answered 304 and `entries` came from this client's cache.
    not_modified: bool = False
    # With a key filter: requested keys the LUT has no entry for.
    missing: list[str] = field(default_factory=list)


def _error_for(response: httpx.Response) -> ProfilerError:
    try:
        body = response.json()
        detail, where = str(body.get("detail", response.text)), body.get("field")
    except (ValueError, AttributeError):
        detail, where = response.text[:500] or response.reason_phrase, None
    status = response.status_code
    kind: type[ProfilerError]
    if status in (401, 403):
        kind = AuthError
    elif status == 404:
        kind = NotFoundError
    elif status == 409:
        kind = ConflictError
    elif status in (400, 413, 422):
        kind = BadRequestError
    elif status >= 500 or status == 429:
        kind = ServerUnavailable
    else:
        kind = ProfilerError
    return kind(detail, status_code=status, field=where)


def check_server_url(url: str) -> str:
    """`url` without a trailing slash; a URL httpx could never reach (a missing scheme: `127.0.0.1:8000`) is a
    ServerUrlError at once, rather than a connection error a caller would retry."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ServerUrlError(f"--server {url!r}: not a URL ({exc})") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ServerUrlError(f"--server {url!r}: expected http://HOST:PORT or https://HOST (e.g. http://127.0.0.1:8000)")
    return url.rstrip("/")


def _device(body: Mapping[str, Any]) -> Device:
    return Device(
        name=body["name"],
        platform=body["platform"],
        runtime=body["runtime"],
        format=body["format"],
        attributes=body["attributes"],
        created_at=body["created_at"],
        last_seen_at=body["last_seen_at"],
        lut_version=body["lut_version"],
        coverage=Coverage(**body["coverage"]),
    )


class ProfilerClient:
    """One server, one token. `with_token()` gives a client for the same server with another token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = check_server_url(base_url)
        self.token = token
        self._transport = transport
        self._timeout = timeout
        headers = {"User-Agent": f"fbnet-lut-client/{__version__}"}
        if token:
            if not _TOKEN.fullmatch(token):
                raise AuthError(
                    f"malformed token ({len(token)} characters): a token is one line of printable ASCII without "
                    "spaces; pass the token itself, not a file that holds it"
                )
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, transport=transport, timeout=timeout
        )
        self._lut_cache: dict[tuple[str, tuple[str, ...] | None], Lut] = {}

    def with_token(self, token: str) -> ProfilerClient:
        return ProfilerClient(self.base_url, token, transport=self._transport, timeout=self._timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ProfilerClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.LocalProtocolError:
            # This request cannot be sent (not a server problem: retrying cannot help). The cause is left out: its
            # message quotes the offending header value, which may be a secret.
            raise ProfilerError(f"a request to {self.base_url} could not be sent: invalid request") from None
        except httpx.TransportError as exc:
            reason = str(exc).strip() or type(exc).__name__
            raise ServerUnavailable(f"cannot reach {self.base_url}: {reason}") from exc
        if response.status_code >= 400:
            raise _error_for(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # -- health -------------------------------------------------------------------------------------------------
    def healthz(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    def metrics(self) -> str:
        return self._request("GET", "/metrics").text

    # -- devices ------------------------------------------------------------------------------------------------
    def register_device(
        self,
        name: str,
        platform: str,
        attributes: Mapping[str, Any] | None = None,
        runtime: str = DEFAULT_RUNTIME,
        model_format: str | None = None,
    ) -> RegisteredDevice:
        """Needs the enroll token; the returned device token is shown only this once. `runtime` and
        `model_format` (default: the runtime's) say which file of each op the device's agent is leased."""
        body = self._json(
            "POST",
            "/devices/register",
            json={"name": name, "platform": platform, "attributes": dict(attributes or {}), "runtime": runtime,
                  "format": model_format},
        )
        return RegisteredDevice(name=body["name"], token=body["token"])

    def list_devices(self) -> list[Device]:
        return [_device(d) for d in self._json("GET", "/devices")["data"]]

    def get_device(self, name: str) -> Device:
        return _device(self._json("GET", f"/devices/{name}"))

    # -- ops ----------------------------------------------------------------------------------------------------
    def upload_ops(self, ops: Iterable[OpUpload], max_request_bytes: int = MAX_REQUEST_BYTES) -> OpsReceipt:
        """Upload ops (admin token), in as many requests as the size limit needs."""
        created: list[str] = []
        existing: list[str] = []
        artifacts_added = 0
        for batch in _batches_by_size(ops, max_request_bytes):
            body = self._json("POST", "/ops", json={"ops": batch})
            created += body["created"]
            existing += body["existing"]
            artifacts_added += body["artifacts_added"]
        return OpsReceipt(created=created, existing=existing, artifacts_added=artifacts_added)

    def get_op(self, key: str) -> dict[str, Any]:
        return self._json("GET", f"/ops/{key}")

    def get_op_model(self, key: str, model_format: str = DEFAULT_FORMAT) -> bytes:
        """The op's file in `model_format` (ONNX by default), checked against the sha256 the server announces."""
        response = self._request("GET", f"/ops/{key}/models/{model_format}")
        announced = response.headers.get("X-Model-Sha256")
        if announced and hashlib.sha256(response.content).hexdigest() != announced:
            raise ServerUnavailable(f"model of {key!r} arrived corrupted (sha256 mismatch)")
        return response.content

    # -- jobs ---------------------------------------------------------------------------------------------------
    def create_jobs(self, device: str, keys: Sequence[str], remeasure: bool = False) -> JobsReceipt:
        body = self._json(
            "POST", "/jobs", json={"device": device, "keys": list(keys), "remeasure": remeasure}
        )
        return JobsReceipt(**body)

    # -- agent --------------------------------------------------------------------------------------------------
    def lease(self, max_tasks: int = 1) -> list[LeasedTask]:
        """Lease up to `max_tasks` of this device's queued tasks (device token)."""
        body = self._json("POST", "/agent/lease", json={"max_tasks": max_tasks})
        return [LeasedTask(**task) for task in body["tasks"]]

    def release(self, task_ids: Sequence[int]) -> int:
        """Give leased tasks back unmeasured (an agent shutting down cleanly); how many were still leased."""
        return int(self._json("POST", "/agent/release", json={"task_ids": list(task_ids)})["released"])

    def post_results(self, results: Sequence[Mapping[str, Any]]) -> ResultsReceipt:
        """Results of leased tasks (docs/contracts.md); retrying is safe: result_ids are stored once."""
        return self._post_chunked("/agent/results", results)

    def post_measurements(self, results: Sequence[Mapping[str, Any]]) -> ResultsReceipt:
        """Offline results (no task_id: key, onnx_sha256, result_id, samples_us, runtime)."""
        return self._post_chunked("/agent/measurements", results)

    def _post_chunked(self, path: str, results: Sequence[Mapping[str, Any]]) -> ResultsReceipt:
        accepted = duplicates = failures = 0
        for start in range(0, len(results), RESULTS_PER_REQUEST):
            body = self._json(
                "POST", path, json={"results": list(results[start : start + RESULTS_PER_REQUEST])}
            )
            accepted += body["accepted"]
            duplicates += body["duplicates"]
            failures += body["failures"]
        return ResultsReceipt(accepted=accepted, duplicates=duplicates, failures=failures)

    # -- LUT ----------------------------------------------------------------------------------------------------
    def get_lut(self, device: str, keys: Sequence[str] | None = None, known: Lut | None = None) -> Lut:
        """The device's LUT; repeated calls send If-None-Match and reuse the cached entries on 304.

        `known` is a copy kept elsewhere (an on-disk cache): its ETag is sent when this client has none, so an
        unchanged LUT costs a 304 instead of the whole body."""
        cache_key = (device, tuple(keys) if keys is not None else None)
        cached = self._lut_cache.get(cache_key) or known
        headers = {"If-None-Match": cached.etag} if cached else {}
        params = {"keys": ",".join(keys)} if keys is not None else None
        response = self._request("GET", f"/lut/{device}", params=params, headers=headers)
        if response.status_code == 304 and cached is not None:
            return Lut(cached.device, cached.lut_version, cached.entries, cached.etag, True, cached.missing)
        body = response.json()
        lut = Lut(
            device=body["device"],
            lut_version=body["lut_version"],
            entries=body["entries"],
            etag=response.headers["ETag"],
            missing=body.get("missing", []),
        )
        self._lut_cache[cache_key] = lut
        return lut

    def get_measurement(self, result_id: str) -> dict[str, Any]:
        """A stored measurement: its raw `samples_us`, statistics, `runtime` provenance, device and key."""
        return self._json("GET", f"/measurements/{result_id}")

    def get_lut_csv(self, device: str, keys: Sequence[str] | None = None) -> str:
        params: dict[str, str] = {"format": "csv"}
        if keys is not None:
            params["keys"] = ",".join(keys)
        return self._request("GET", f"/lut/{device}", params=params).text

    # -- search spaces and validation (bodies as documented in docs/protocol.md) --------------------------------
    def put_space(self, name: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a search space (admin token): `manifest` = {layers, candidates, fixed_keys, params}."""
        return self._json("PUT", f"/spaces/{name}", json=dict(manifest))

    def get_spaces(self) -> list[dict[str, Any]]:
        return self._json("GET", "/spaces")["data"]

    def get_space(self, name: str) -> dict[str, Any]:
        """One search space: {name, layers, candidates, fixed_keys, params, ...}; NotFoundError if unknown."""
        return self._json("GET", f"/spaces/{name}")

    def get_coverage(self, device: str, space: str | None = None) -> list[dict[str, Any]]:
        """Per search space: total / measured / queued / leased / failed / missing keys of the device's LUT."""
        params = {"space": space} if space is not None else None
        return self._json("GET", f"/devices/{device}/coverage", params=params)["data"]

    def post_validation(self, device: str, run: Mapping[str, Any]) -> dict[str, Any]:
        """Store a validation run (admin token): {space, label, points, calibration}; returns it with its summary."""
        return self._json("POST", f"/devices/{device}/validations", json=dict(run))

    def get_validations(self, device: str, limit: int = 20) -> list[dict[str, Any]]:
        """The device's latest validation runs, newest first, each with its summary and points."""
        return self._json("GET", f"/devices/{device}/validations", params={"limit": limit})["data"]


def _batches_by_size(ops: Iterable[OpUpload], max_request_bytes: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for op in ops:
        artifacts = {fmt: base64.b64encode(data).decode() for fmt, data in op.artifacts.items()}
        item = {"key": op.key, "spec": dict(op.spec), "onnx_b64": base64.b64encode(op.onnx_bytes).decode(),
                "artifacts": artifacts}
        item_size = (len(item["onnx_b64"]) + sum(len(b64) + 32 for b64 in artifacts.values())
                     + len(json.dumps(item["spec"])) + len(op.key) + 64)
        if batch and size + item_size > max_request_bytes:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch
