"""The online agent: register once, then lease -> download (cached) -> measure -> spool -> post, until stopped.

Order of operations is what makes it lossless: a result is fsynced to the spool before it is posted and
leaves the spool only when the server has acknowledged it. A task is leased one at a time, so a stop (or a
kill) strands at most the op in flight, whose lease then expires and returns it to the queue. Results are
posted in batches. Server trouble (connection errors, timeouts, 5xx) is retried with backoff and jitter;
4xx answers are not retried.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from device_agents.backends.base import Backend, OpInput
from device_agents.errors import AgentError
from device_agents.measure import measure_op
from device_agents.onnx_cache import DEFAULT_MAX_BYTES, OnnxCache
from device_agents.progress import OpProgress
from device_agents.retry import RetryPolicy, StopRequestedError, call_with_retry
from device_agents.spool import Spool
from device_agents.state import AgentPaths, Credentials, load_credentials, save_credentials
from device_agents.timing import TimingPolicy
from fbnet_core.client import (
    AuthError,
    ConflictError,
    LeasedTask,
    ProfilerClient,
    ProfilerError,
    ServerUnavailable,
)
from fbnet_core.formats.jsonl import append_records
from fbnet_core.measurement import MeasurementRecord
from fbnet_core.model_formats import DEFAULT_RUNTIME

log = logging.getLogger("device_agents")
T = TypeVar("T")

REMAINING_REFRESH_S = 5.0  # how often the progress asks the server how much is left


def is_retryable(exc: Exception) -> bool:
    return isinstance(exc, ServerUnavailable)


@dataclass(frozen=True)
class AgentSettings:
    server_url: str
    name: str
    paths: AgentPaths
    once: bool = False
    post_batch: int = 16  # post when this many results are spooled...
    post_every_s: float = 10.0  # ...or when the oldest unposted one is this old
    idle_poll_s: float = 5.0  # how often an idle agent asks for work
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    onnx_cache_bytes: int = DEFAULT_MAX_BYTES  # the downloaded models kept, least recently used dropped first


@dataclass
class AgentSummary:
    measured: int = 0
    failed: int = 0
    posted: int = 0
    rejected: int = 0


def ensure_registered(
    settings: AgentSettings,
    enroll_token: str | None,
    device: dict[str, Any],
    stop: threading.Event,
    runtime: str = DEFAULT_RUNTIME,
    model_format: str | None = None,
) -> Credentials:
    """The saved device token, or a new registration (with the enroll token) saved mode 0600. `device`: the
    description to register (a backend's `describe_device()` plus its runtime); `runtime` and `model_format`
    (None: the runtime's own) say which file of each op the device is leased."""
    saved = load_credentials(settings.paths)
    if saved is not None:
        if saved.server_url.rstrip("/") != settings.server_url.rstrip("/") or saved.name != settings.name:
            raise AgentError(
                f"{settings.paths.credentials} belongs to {saved.name!r} on {saved.server_url}; use another --state-dir"
            )
        return saved
    if not enroll_token:
        raise AgentError("no saved device token and no enroll token (--enroll-token, or `profiler-server serve --dev`)")
    with ProfilerClient(settings.server_url, enroll_token) as enroll:
        try:
            registered = call_with_retry(
                lambda: enroll.register_device(
                    settings.name, str(device.get("platform") or "unknown")[:100], device, runtime, model_format
                ),
                is_retryable, settings.retry, stop.wait, "register",
            )
        except ConflictError as exc:
            raise AgentError(
                f"device {settings.name!r} is already registered, but its token is not in {settings.paths.credentials}"
                " (copy it there, or register under another --name)"
            ) from exc
        except ProfilerError as exc:
            raise AgentError(f"registration refused: {exc}") from exc
    credentials = Credentials(settings.server_url, settings.name, registered.token)
    save_credentials(settings.paths, credentials)
    log.info("registered %s on %s; token saved in %s", settings.name, settings.server_url, settings.paths.credentials)
    return credentials


class Agent:
    def __init__(
        self,
        client: ProfilerClient,
        backend: Backend,
        policy: TimingPolicy,
        settings: AgentSettings,
        stop: threading.Event,
    ) -> None:
        self._client = client
        self._backend = backend
        self._policy = policy
        self._settings = settings
        self._stop = stop
        self._spool = Spool(settings.paths.spool)
        self._rejected = settings.paths.root / "rejected.jsonl"
        self._cache = OnnxCache(settings.paths.onnx_cache, self._download, settings.onnx_cache_bytes)
        self._oldest_unposted: float | None = None
        self.summary = AgentSummary()

    def _retry(self, call: Callable[[], T], what: str) -> T:
        return call_with_retry(call, is_retryable, self._settings.retry, self._stop.wait, what)

    def _download(self, key: str, model_format: str) -> bytes:
        return self._retry(lambda: self._client.get_op_model(key, model_format), f"download {key}.{model_format}")

    def _remaining(self) -> int | None:
        try:
            coverage = self._client.get_device(self._settings.name).coverage
        except ProfilerError:
            return None  # progress is best effort; the work goes on without it
        # Leased on the server: the task just leased, and those measured but still waiting in the spool.
        return max(coverage.queued + coverage.leased - self._unposted(), 0)

    def _unposted(self) -> int:
        return len(self._spool.pending())

    def run(self) -> AgentSummary:
        """Work until stopped (or, with `once`, until the queue is empty); always flushes the spool."""
        try:
            self.flush()  # results a previous run measured but could not post
            last_count = -math.inf
            with OpProgress(0, f"agent {self._settings.name}") as progress:
                while not self._stop.is_set():
                    tasks = self._retry(lambda: self._client.lease(1), "lease")
                    if not tasks:
                        self.flush()
                        if self._settings.once:
                            break
                        self._stop.wait(self._settings.idle_poll_s)
                        continue
                    if time.monotonic() - last_count >= REMAINING_REFRESH_S:
                        last_count = time.monotonic()
                        remaining = self._remaining()
                        if remaining is not None:
                            progress.set_remaining(remaining)
                    self._work(tasks[0], progress)
                    if self._due():
                        self.flush()
            self.flush()
        except StopRequestedError:
            log.warning("stopped while the server was unreachable; %d result(s) stay spooled in %s",
                        len(self._spool.pending()), self._settings.paths.spool)
        except AuthError as exc:
            raise AgentError(f"the server refused this agent's token ({exc}); re-register or fix the state dir") from exc
        return self.summary

    def _work(self, task: LeasedTask, progress: OpProgress) -> None:
        try:
            record = measure_op(self._backend, self._op_input(task), self._policy)
        except (AgentError, ProfilerError) as exc:  # a model the server cannot give (correctly): this task fails
            if isinstance(exc, AuthError):
                raise
            reason = f"cannot get the model of {task.key}: {exc}" if isinstance(exc, ProfilerError) else str(exc)
            record = MeasurementRecord.failure(str(uuid.uuid4()), task.key, task.onnx_sha256, reason)
        record = replace(record, task_id=task.task_id)
        if record.error is not None:
            self.summary.failed += 1
            log.warning("task %d (%s) failed: %s", task.task_id, task.key, record.error.splitlines()[0])
        else:
            self.summary.measured += 1
        self._spool.add([record.to_json()])
        if self._oldest_unposted is None:
            self._oldest_unposted = time.monotonic()
        progress.advance(failed=record.is_failure)

    def _op_input(self, task: LeasedTask) -> OpInput:
        """The task's op with its file in the backend's format, downloaded once (the cache)."""
        model_format = self._backend.model_format
        if model_format == "onnx":
            return OpInput(task.key, self._cache.path_for(task.key, task.onnx_sha256), task.onnx_sha256, task.spec)
        if task.format != model_format or task.model_sha256 is None:
            raise AgentError(
                f"the server leases {task.key} as {task.format} (file {task.model_sha256 or 'missing'}), but the "
                f"{self._backend.name} backend loads {model_format}: register this backend under its own --name"
            )
        model_path = self._cache.path_for(task.key, task.model_sha256, model_format)
        return OpInput(task.key, None, task.onnx_sha256, task.spec, model_path=model_path,
                       model_sha256=task.model_sha256)

    def _due(self) -> bool:
        pending = self._unposted()
        too_old = self._oldest_unposted is not None and time.monotonic() - self._oldest_unposted >= self._settings.post_every_s
        return pending >= self._settings.post_batch or too_old

    def flush(self) -> None:
        """Post every spooled result; acknowledged ones leave the spool, 4xx-rejected ones go to rejected.jsonl."""
        pending = self._spool.pending()
        if not pending:
            self._oldest_unposted = None
            return
        try:
            self._retry(lambda: self._client.post_results(pending), "post results")
            accepted = pending
            rejected: list[dict[str, Any]] = []
        except (AuthError, StopRequestedError):
            raise
        except ProfilerError:
            accepted, rejected = self._post_one_by_one(pending)
        if rejected:
            append_records(self._rejected, rejected)
        self._spool.acknowledge({record["result_id"] for record in accepted + rejected})
        self.summary.posted += len(accepted)
        self.summary.rejected += len(rejected)
        self._oldest_unposted = None

    def _post_one_by_one(self, pending: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A batch the server refused: find the records it refuses, keep them aside with the reason, post the rest."""
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for record in pending:
            try:
                self._retry(lambda record=record: self._client.post_results([record]), "post result")
                accepted.append(record)
            except (AuthError, StopRequestedError):
                raise
            except ProfilerError as exc:
                log.error("server refused result %s (%s): %s", record["result_id"], record.get("key"), exc)
                rejected.append({**record, "rejected_reason": str(exc)})
        return accepted, rejected
