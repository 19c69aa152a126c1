"""In-process counters, exposed with database gauges in the Prometheus text format at /metrics."""

from __future__ import annotations

import threading
import time
from collections import Counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.request_seconds: Counter[tuple[str, str]] = Counter()
        self.events: Counter[str] = Counter()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.request_seconds[(method, route)] += seconds

    def count(self, event: str, amount: int = 1) -> None:
        with self._lock:
            self.events[event] += amount

    def render(self, gauges: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> str:
        lines: list[str] = []
        with self._lock:
            lines += [
                "# HELP profiler_http_requests_total HTTP requests by route and status.",
                "# TYPE profiler_http_requests_total counter",
            ]
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(
                    f'profiler_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}'
                )
            lines += [
                "# HELP profiler_http_request_seconds_total Time spent serving requests, by route.",
                "# TYPE profiler_http_request_seconds_total counter",
            ]
            for (method, route), seconds in sorted(self.request_seconds.items()):
                lines.append(
                    f'profiler_http_request_seconds_total{{method="{method}",route="{route}"}} {seconds:.6f}'
                )
            for event, n in sorted(self.events.items()):
                lines += [f"# TYPE profiler_{event}_total counter", f"profiler_{event}_total {n}"]
        for name, samples in gauges.items():
            lines.append(f"# TYPE profiler_{name} gauge")
            for labels, value in sorted(samples.items()):
                rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(
                    f"profiler_{name}{{{rendered}}} {value:g}" if rendered else f"profiler_{name} {value:g}"
                )
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Counts every HTTP request under its route template (not the raw path, to bound label cardinality)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.observe_request(scope["method"], template, status, time.perf_counter() - started)
