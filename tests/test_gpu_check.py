"""bench/gpu_check.sh, the one prepared script for a lent GPU machine, run here on the CPU at toy sizes
(GPU_CHECK_DEVICE=cpu) in an interpreter that cannot import the server's packages - the GPU machine has torch,
onnxruntime, typer, rich and httpx but no pydantic, FastAPI or SQLAlchemy. Its CUDA path needs a GPU: none here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER_PACKAGES = ("pydantic_settings", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg")

# Imported at interpreter start-up (site imports `sitecustomize` from sys.path): refuses the server's packages,
# and pydantic when our own code asks for it (recent typer needs pydantic itself; the GPU machine's older typer
# does not, and has no pydantic beside it).
BLOCKER = f"""
import importlib.abc
import sys


def importer_path():
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith("<frozen"):
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else ""


class BlockServerPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        ours = importer_path().startswith({str(ROOT)!r} + "/") and "/.venv/" not in importer_path()
        if top in {SERVER_PACKAGES!r} or (top == "pydantic" and ours):
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not on the GPU machine)")
        return None


sys.meta_path.insert(0, BlockServerPackages())
"""


def run_check(tmp_path: Path, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = {
        **os.environ,
        "GPU_CHECK_DEVICE": "cpu",
        # No wall-clock limit in a test: on a loaded machine a step is slow, not broken.
        "GPU_CHECK_STEP_LIMITS": "off",
        "PYTHON": python,
        "OUT": str(tmp_path / "out"),
        "PYTHONPATH": str(blocker),
    }
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], env=env, capture_output=True, text=True)


@pytest.mark.parametrize(
    ("code", "blocked"),
    [
        ("import sqlalchemy", True),
        ("import fastapi", True),
        ("import profiler_server.app", True),  # our server: pydantic and FastAPI
        ("import typer.main, pydantic", False),  # not ours: a library's own import of pydantic
    ],
)
def test_the_blocker_blocks_what_the_gpu_machine_lacks(tmp_path: Path, code: str, blocked: bool) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    script = tmp_path / "probe.py"  # a file, so that the importer is a path (not "<string>")
    script.write_text(code + "\n")
    result = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "PYTHONPATH": f"{blocker}:{ROOT}"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert ("blocked: not on the GPU machine" in result.stderr) is blocked, result.stderr[-2000:]
    assert (result.returncode != 0) is blocked


# The whole script, trained searches included: minutes on an idle machine, many more on a loaded one. No time
# limit of any kind: pytest-timeout's hang guard (pyproject.toml) is lifted here.
@pytest.mark.timeout(0)
def test_every_step_passes_on_the_cpu_without_the_server_packages(tmp_path: Path) -> None:
    result = run_check(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    out = tmp_path / "out"
    # what comes back from the device machine: at most 8 files, none in folders
    assert sorted(path.name for path in out.iterdir()) == [
        "env.txt",
        "profile-cpu.txt",
        "pytest.txt",
        "search.txt",
        "supernet.txt",
        "torch-cpu.jsonl",
    ]
    assert "3 passed" in (out / "pytest.txt").read_text()
    assert "single_path vs weighted" in (out / "supernet.txt").read_text()
    records = [json.loads(line) for line in (out / "torch-cpu.jsonl").read_text().splitlines()]
    assert len(records) > 50 and all("samples_us" in record for record in records)
    assert {record["runtime"]["runtime"] for record in records} == {"torch"}
    search = (out / "search.txt").read_text()
    assert search.count("argmax architecture:") == 2  # weighted and single path
    assert "all steps passed" in result.stdout
    assert "=== search (limit none s)" in result.stdout  # no step ran under a time limit


@pytest.mark.timeout(0)
def test_a_failing_step_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    # An interpreter that cannot start: every Python step fails; the script names each and exits 1.
    result = run_check(tmp_path, python="/nonexistent/python3")
    assert result.returncode == 1
    for step in ("environment", "pytest", "supernet", "profile", "search"):
        assert f"=== {step}: exit " in result.stdout
    assert "failed: environment (exit 127)" in result.stdout
