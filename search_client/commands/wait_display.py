"""What `dnas lut request --wait` (and `dnas validate`) show while the agent measures: a progress bar on a
terminal, plain `measured N/M` lines otherwise (a log file, CI), and one line when no agent polls."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# Plain output: a line when the count has changed and this long has passed since the last one...
PLAIN_EVERY_S = 10.0
# ...and one at least this often, so a log shows the wait is alive.
PLAIN_AT_LEAST_EVERY_S = 60.0


class WaitDisplay:
    def __init__(self, console: Console | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._console = console or Console(stderr=True)
        self._clock = clock
        self._progress: Progress | None = None
        self._task = None
        self._last_line: tuple[float, int] | None = None  # (when, done) of the last plain line
        self._last: tuple[int, int] | None = None

    def __enter__(self) -> WaitDisplay:
        if self._console.is_terminal:
            columns = (TextColumn("measuring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self._progress = Progress(*columns, console=self._console)
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self._last is not None and kind is None and self._last_line and self._last_line[1] != self._last[0]:
            self._line(*self._last)  # the final count, when the last line showed an older one

    def update(self, done: int, total: int) -> None:
        self._last = (done, total)
        if self._progress is not None:
            if self._task is None:
                self._task = self._progress.add_task("lut", total=total)
            self._progress.update(self._task, completed=done, total=total)
            return
        now = self._clock()
        if self._last_line is None:
            self._line(done, total)
            return
        since = now - self._last_line[0]
        if (done != self._last_line[1] and since >= PLAIN_EVERY_S) or since >= PLAIN_AT_LEAST_EVERY_S:
            self._line(done, total)

    def note(self, message: str) -> None:
        """A line above the bar (or among the plain lines)."""
        if self._progress is not None:
            self._progress.console.print(message, markup=False, highlight=False)
        else:
            self._console.print(message, markup=False, highlight=False, soft_wrap=True)

    def _line(self, done: int, total: int) -> None:
        self._last_line = (self._clock(), done)
        self._console.print(f"measured {done}/{total}", markup=False, highlight=False)
