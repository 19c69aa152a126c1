"""Running the three command lines as a user does: a child process, its exit status and its stderr."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

BIN = Path(sys.executable).parent


def command(program: str, *args: str) -> list[str]:
    """The installed console script (`dnas`, `device-agent`, `profiler-server`) with its arguments."""
    return [str(BIN / program), *args]


def run(program: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(program, *args), capture_output=True, text=True, env=_env(env), timeout=timeout,
                          check=False, stdin=subprocess.DEVNULL)


def start(program: str, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(command(program, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(env), stdin=subprocess.DEVNULL, preexec_fn=_as_from_a_terminal)


def _as_from_a_terminal() -> None:
    """In the child before it runs: Ctrl-C acts as it does for a command typed at a terminal. A test run started in
    the background by a non-interactive shell (`make test &`) ignores SIGINT, every child inherits that, and Python
    then turns no SIGINT into KeyboardInterrupt: the interrupt tests would wait for nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    # No colours or terminal width from the test runner's environment: stderr is compared line by line.
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.update(extra or {})
    return env


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A non-zero exit, exactly one non-empty line on stderr, no traceback; the line holds each fragment."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = error_lines(result.stderr)
    assert result.returncode != 0 and len(lines) == 1, (result.returncode, result.stderr)
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def interrupt_when(process: subprocess.Popen[str], ready: str, within_s: float = 900.0) -> tuple[str, str]:
    """Send SIGINT once `ready` has appeared on stderr (read line by line), then collect the rest. `within_s` is a
    hang guard, not a speed check: on 2 cores shared with another test run, exporting a space's ops before the
    first progress line can take minutes."""
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if ready in line:
            process.send_signal(signal.SIGINT)
            break
    else:
        process.kill()
    stdout, rest = process.communicate(timeout=within_s)
    return stdout, "".join(seen) + rest
