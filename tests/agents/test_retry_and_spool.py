"""Retry policy (pure, seeded jitter) and the on-disk spool / JSON Lines files (real files, real fsync)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from device_agents.online import is_retryable
from device_agents.retry import RetryPolicy, StopRequestedError, call_with_retry
from device_agents.spool import Spool
from fbnet_core.client import BadRequestError, ServerUnavailable
from fbnet_core.formats.jsonl import append_records, read_records


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def test_server_unavailability_is_retried_with_growing_jittered_delays():
    waits: list[float] = []
    call = Flaky([ServerUnavailable("connection refused")] * 4)
    policy = RetryPolicy(initial_s=1.0, max_delay_s=5.0)
    result = call_with_retry(call, is_retryable, policy, lambda s: waits.append(s) or False, "lease", random.Random(0))
    assert result == "ok" and call.calls == 5
    caps = [1.0, 2.0, 4.0, 5.0]  # doubling, capped
    assert all(0 <= wait <= cap for wait, cap in zip(waits, caps, strict=True))
    assert len(set(waits)) == 4  # jittered, not lockstep


def test_client_errors_are_not_retried():
    call = Flaky([BadRequestError("samples_us: must be > 0", 422, "samples_us")])
    with pytest.raises(BadRequestError):
        call_with_retry(call, is_retryable, RetryPolicy(), lambda s: False, "post")
    assert call.calls == 1


def test_a_stop_request_cuts_the_wait_short():
    call = Flaky([ServerUnavailable("down")] * 100)
    with pytest.raises(StopRequestedError, match="post results"):
        call_with_retry(call, is_retryable, RetryPolicy(), lambda s: True, "post results")
    assert call.calls == 1


def test_spool_keeps_records_until_acknowledged(tmp_path: Path):
    spool = Spool(tmp_path / "agent" / "spool.jsonl")
    spool.add([{"result_id": "a", "samples_us": [1.0]}, {"result_id": "b", "error": "x"}])
    spool.add([{"result_id": "c", "samples_us": [2.0]}])
    assert [r["result_id"] for r in Spool(tmp_path / "agent" / "spool.jsonl").pending()] == ["a", "b", "c"]
    spool.acknowledge({"a", "c"})
    assert [r["result_id"] for r in spool.pending()] == ["b"]
    spool.acknowledge({"b"})
    assert spool.pending() == [] and not (tmp_path / "agent" / "spool.jsonl").exists()


def test_a_torn_last_line_from_a_crash_is_skipped_and_cut_before_the_next_append(tmp_path: Path):
    path = tmp_path / "results.jsonl"
    append_records(path, [{"result_id": "a"}])
    with path.open("a") as handle:
        handle.write('{"result_id": "b", "samp')  # killed mid-write: that record was never acknowledged
    assert read_records(path) == [{"result_id": "a"}]
    append_records(path, [{"result_id": "c"}])
    assert read_records(path) == [{"result_id": "a"}, {"result_id": "c"}]


def test_a_damaged_line_in_the_middle_is_an_error_naming_the_line(tmp_path: Path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"result_id": "a"}\nnot json\n{"result_id": "c"}\n')
    with pytest.raises(ValueError, match="results.jsonl:2: not a JSON object"):
        read_records(path)
