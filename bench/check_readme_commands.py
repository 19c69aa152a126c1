"""Run the README's "By hand" commands exactly as shown, in a scratch folder, and say which one fails.

The test suite checks that every command the docs show uses options the command lines have, and runs the quick
ones (tests/test_docs.py); this script runs the long path a new user types - a server, an agent, a LUT request,
a search, training, export - which takes minutes. The block is taken from README.md as it stands; the only
changes are a free port for 8000 and a wait for the server's /healthz after the line that starts it (a user
typing the commands waits for it naturally). Background jobs are stopped at the end.

    .venv/bin/python bench/check_readme_commands.py [--section "By hand"] [--timeout-s 1800] [--keep DIR] [--readme FILE]
        [--then COMMAND ...]

`--then` runs more commands after the block, in the same shell (its server and agent still up), for example the
database's size after a validation run:

    .venv/bin/python bench/check_readme_commands.py \
        --then "dnas validate --device my-cpu --resolution 32 --width 0.25 --head-channels 64 --n 30" \
        --then "du -sh .profiler" --then "profiler-server gc --older-than-days 0" --then "du -sh .profiler"

Prints each command, its exit status and wall time, and exits non-zero at the first failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WAIT_FOR_SERVER = (
    'for _ in $(seq 120); do python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '
    "'/healthz', timeout=1)\" \"http://127.0.0.1:{port}\" 2>/dev/null && break; sleep 0.5; done"
)


def section_commands(readme: str, heading: str) -> list[str]:
    """The command lines of the first code block under `## heading`, continuation lines joined."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)^```[a-z]*\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    if match is None:
        raise SystemExit(f"check_readme_commands: README.md has no code block under '## {heading}'")
    commands: list[str] = []
    pending = ""
    for line in match[2].splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def script_for(commands: list[str], port: int) -> str:
    """A bash script that runs the commands one by one, timing each and stopping at the first failure."""
    lines = ["set -uo pipefail", "trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT"]
    for command in commands:
        command = command.replace("source .venv/bin/activate", f"source {ROOT}/.venv/bin/activate")
        command = command.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace("--port 8000", f"--port {port}")
        quoted = command.replace("'", "'\\''")
        lines.append(f"echo '$ {quoted}'")
        if command.endswith("&"):
            lines.append(command)
            if "profiler-server serve" in command:
                lines.append(WAIT_FOR_SERVER.format(port=port))
            continue
        lines += [
            "start=$(date +%s.%N)",
            command,
            "status=$?",
            "echo \"  -> exit $status in $(python -c \"import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')\" "
            "$start $(date +%s.%N)) s\"",
            f"[ $status -eq 0 ] || {{ echo 'FAILED: {quoted}'; exit $status; }}",
        ]
    lines.append("echo 'every command ran'")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", default="By hand", help="README heading whose first code block is run")
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md", help="the file to take the commands from")
    parser.add_argument(
        "--then", action="append", default=[], metavar="COMMAND", help="a command to run after the block (repeatable)"
    )
    args = parser.parse_args()

    commands = section_commands(args.readme.read_text(encoding="utf-8"), args.section) + args.then
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="readme-commands-"))
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "readme_commands.sh"
    script.write_text(script_for(commands, free_port()), encoding="utf-8")
    print(f"running {len(commands)} commands of {args.readme.name}'s '{args.section}' in {workdir}", flush=True)
    started = time.monotonic()
    # Its own process group, so that a timeout or Ctrl-C stops the background server and agent with the script.
    process = subprocess.Popen(["bash", str(script)], cwd=workdir, start_new_session=True)
    try:
        status = process.wait(timeout=args.timeout_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as stop:
        print(f"timed out after {args.timeout_s:.0f} s" if isinstance(stop, subprocess.TimeoutExpired) else "stopped")
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        status = 124
    print(f"{'ok' if status == 0 else 'failed'} in {time.monotonic() - started:.0f} s")
    if args.keep is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
