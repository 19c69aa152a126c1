"""Progress of a batch of ops: a rich bar on a terminal, periodic log lines otherwise (CI, services, nohup)."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger("device_agents")


class OpProgress:
    """`advance(failed=...)` after each op; `set_remaining(n)` when an online agent learns the queue's length."""

    def __init__(self, total: int, description: str = "ops", log_every_s: float = 10.0) -> None:
        self._total = total
        self._done = 0
        self._failed = 0
        self._started = time.monotonic()
        self._last_log = self._started
        self._logged_done = -1
        self._log_every_s = log_every_s
        self._description = description
        self._bar: Progress | None = None
        self._task = None
        if sys.stderr.isatty():
            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            )
            self._task = self._bar.add_task(description, total=total or None, failed=0)

    def __enter__(self) -> OpProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._log(force=True)

    def set_remaining(self, remaining: int) -> None:
        if self._done == 0 and remaining > 0:
            self._started = time.monotonic()  # the ETA's rate counts from the first op, not from idle time
        self._total = self._done + remaining
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=self._total)

    def advance(self, failed: bool = False) -> None:
        self._done += 1
        self._failed += int(failed)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, failed=self._failed)
        else:
            self._log()

    def eta_s(self) -> float | None:
        if self._done == 0 or self._total <= self._done:
            return None if self._done == 0 else 0.0
        rate_s = (time.monotonic() - self._started) / self._done
        return rate_s * (self._total - self._done)

    def _log(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._bar is not None or (not force and now - self._last_log < self._log_every_s):
            return
        if force and self._logged_done == self._done:
            return  # the closing line would repeat the last one
        self._last_log = now
        self._logged_done = self._done
        eta = self.eta_s()
        eta_text = "unknown" if eta is None else f"{eta:.0f} s"
        log.info("%s: done %d (failed %d), remaining %d, elapsed %.0f s, ETA %s", self._description, self._done,
                 self._failed, max(self._total - self._done, 0), now - self._started, eta_text)
