"""Running a timing benchmark on a machine shared with other jobs (bench/ helpers, not a package).

Long CPU-bound phases (searches, training) run at nice 19 so that they do not disturb timing jobs beside them, and
measurements hold an exclusive flock on an agreed file so that no two timing jobs that take it overlap.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def timing_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive flock on `path` (if given) for the duration: other jobs taking it wait."""
    if path is None:
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def low_priority() -> Iterator[None]:
    """This thread at nice 19 for the duration (torch runs one thread in these benches), then back to 0 for the
    measurements. Lowering nice again needs root; where it cannot, the bench stops rather than measure at nice 19."""
    os.setpriority(os.PRIO_PROCESS, 0, 19)
    try:
        yield
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        except PermissionError as error:
            raise SystemExit(
                f"cannot restore priority 0 for the measurements (not root?): {error}"
            ) from error
