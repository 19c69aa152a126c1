"""Shared inputs of the dashboard tests: space bodies, validation points and a stand-in agent.

The stand-in agent speaks the real protocol (lease, post results) for a registered device, but reports synthetic
timings instead of running the ONNX files: the dashboard tests are about what the server stores and shows.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from fbnet_core.client import ProfilerClient
from profiler_server.example_ops import RUNTIME, op_upload

CANDIDATES = ["k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip"]
LAYERS = 22


def space_body(
    placed: dict[tuple[int, int], str], fixed_keys: Sequence[str] = (), identity: Sequence[int] = ()
) -> dict[str, Any]:
    """22 x 9 layers: `placed[(layer, candidate)] = key`, other cells a per-test filler key unless the layer
    is in `identity` (then its `skip` cell is null, as for an identity skip)."""
    filler = f"filler-{uuid.uuid4().hex[:8]}"
    layers: list[list[str | None]] = []
    for layer in range(LAYERS):
        row: list[str | None] = []
        for candidate in range(len(CANDIDATES)):
            if (layer, candidate) in placed:
                row.append(placed[(layer, candidate)])
            elif candidate == len(CANDIDATES) - 1 and layer in identity:
                row.append(None)
            else:
                row.append(filler)
        layers.append(row)
    return {
        "layers": layers,
        "candidates": list(CANDIDATES),
        "fixed_keys": list(fixed_keys),
        "params": {"test": True},
    }


def point(name: str, predicted_us: float, measured_us: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "random", "key": f"net.r224.{uuid.uuid4().hex[:16]}",
            "predicted_us": predicted_us, "measured_us": measured_us, **extra}  # fmt: skip


_BLOCK_KEY = re.compile(r"blk\.k(\d)_e(\d)(?:_g(\d))?\.c(\d+)\.o(\d+)\.s(\d)\.h(\d+)w(\d+)")


def synthetic_latency_us(key: str) -> float:
    """A plausible latency from a block key's shape: its multiply-adds at 2 GMAC/s plus 6 us of overhead."""
    match = _BLOCK_KEY.fullmatch(key)
    if match is None:
        return 150.0 + (sum(key.encode()) % 400)
    k, e, g, c, o, s, h, w = (int(v) if v else 1 for v in match.groups())
    mid = c * e
    out_hw = (h // s) * (w // s)
    madds = h * w * c * mid / g + out_hw * mid * k * k + out_hw * mid * o / g
    return 6.0 + madds / 2000.0


class StandInAgent:
    """Leases a device's tasks and answers them through the real protocol, with synthetic timings."""

    def __init__(self, client: ProfilerClient) -> None:
        self.client = client

    def work(self, max_tasks: int, fail: Sequence[str] = ()) -> list[str]:
        """Lease up to `max_tasks` (in leases of at most 50); fail keys in `fail`, measure the rest."""
        done: list[str] = []
        while len(done) < max_tasks:
            leased = self._work_once(min(50, max_tasks - len(done)), fail)
            if not leased:
                break
            done += leased
        return done

    def _work_once(self, max_tasks: int, fail: Sequence[str]) -> list[str]:
        tasks = self.client.lease(max_tasks=max_tasks)
        results: list[dict[str, Any]] = []
        for task in tasks:
            if task.key in fail:
                results.append({"task_id": task.task_id, "result_id": str(uuid.uuid4()),
                                "error": f"onnxruntime: <{task.key}> not supported & skipped"})  # fmt: skip
                continue
            median = synthetic_latency_us(task.key)
            samples = [median * (1 + 0.01 * ((i % 5) - 2)) for i in range(25)]
            results.append({"task_id": task.task_id, "result_id": str(uuid.uuid4()), "key": task.key,
                            "onnx_sha256": task.onnx_sha256, "samples_us": samples, "runtime": RUNTIME})  # fmt: skip
        if results:
            self.client.post_results(results)
        return [t.key for t in tasks]


def upload_ops(admin: ProfilerClient, keys: Sequence[str]) -> None:
    admin.upload_ops([op_upload(key, seed) for seed, key in enumerate(keys)])


def api(server: Any, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
    """A raw HTTP call (httpx) to a live server, for checking statuses and error bodies exactly."""
    import httpx

    headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=30.0, **kwargs)
