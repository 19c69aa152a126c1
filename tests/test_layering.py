"""Which part may import which (pyproject.toml, [tool.importlinter]): the contracts hold, and they can fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(config: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(LINT_IMPORTS), "--no-cache"] + ([f"--config={config}"] if config else [])
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_every_import_contract_is_kept() -> None:
    result = _lint_imports()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_broken_contract_fails_the_check(tmp_path: Path) -> None:
    # The server imports fbnet_core: a contract that forbids it must be reported broken.
    config = tmp_path / "importlinter.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["fbnet_core", "profiler_server"]\n\n'
        '[[tool.importlinter.contracts]]\nname = "server without core"\ntype = "forbidden"\n'
        'source_modules = ["profiler_server"]\nforbidden_modules = ["fbnet_core"]\n'
    )
    result = _lint_imports(config)
    assert result.returncode == 1
    assert "server without core BROKEN" in result.stdout


def test_the_agent_starts_without_torch() -> None:
    # The contracts see imports; this sees what a start-up really loads (a lazy import that slipped to the top).
    probe = "import sys, device_agents.cli, device_agents.online, device_agents.offline; print(sorted({'torch', 'pydantic', 'fastapi'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
