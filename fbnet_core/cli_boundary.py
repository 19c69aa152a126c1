"""The one place where each command line (`profiler-server`, `device-agent`, `dnas`) turns an error into a line.

A command raises typed errors (`FbnetLutError` and its subclasses, the client's `ProfilerError` among them) or
lets a file error (`OSError`) through; `run_cli` prints the first line of its message after the program's name
and exits 2, with no traceback. Ctrl-C, wherever it lands (Typer turns it into exit 130 inside a command),
prints one line and exits 130, the shell's code for a process ended by SIGINT. Anything else is a bug and keeps
its traceback. Standard library and httpx only: every part runs it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import httpx

from fbnet_core.errors import FbnetLutError

ERROR_EXIT = 2
INTERRUPTED_EXIT = 130


class Interrupted(BaseException):  # noqa: N818  (like KeyboardInterrupt, not an error)
    """Raise to stop a command as Ctrl-C would (exit 130, one line), e.g. from a stop requested by a signal.

    A BaseException, as KeyboardInterrupt is, so that no `except Exception` on the way swallows it."""


def one_line(exc: BaseException) -> str:
    """The first non-empty line of the message (a whole message may quote a traceback or a server's body)."""
    if isinstance(exc, httpx.TransportError):
        try:
            url = exc.request.url
        except RuntimeError:  # an error raised before a request existed
            url = None
        reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        return f"cannot reach {url.scheme}://{url.netloc.decode()}: {reason}" if url else reason
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def say(program: str, message: str) -> None:
    print(f"{program}: {message}", file=sys.stderr, flush=True)


def run_cli(app: Callable[[], object], program: str) -> None:
    """Run `app` (a Typer app in standalone mode); see the module docstring for what becomes of an error."""
    try:
        app()
    except SystemExit as exc:
        if exc.code == INTERRUPTED_EXIT:
            say(program, "interrupted")
        raise
    except (KeyboardInterrupt, Interrupted):  # outside a command's body (Typer converts those inside)
        say(program, "interrupted")
        sys.exit(INTERRUPTED_EXIT)
    except (FbnetLutError, OSError, httpx.HTTPError) as exc:
        say(program, one_line(exc))
        sys.exit(ERROR_EXIT)
