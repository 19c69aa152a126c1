#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
# torch is installed first at an exact version: a looser spec would pull a multi-GB CUDA build here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[dev]"
echo "virtual environment ready: .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
