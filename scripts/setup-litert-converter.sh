#!/usr/bin/env bash
# Create (or refresh) .venv-litert: the LiteRT converter (litert-torch) in a virtual environment of its own.
# The converter pulls jax, transformers and a large conversion library (about 900 MB) and pins
# typing_extensions below what the project's other libraries need, so it never goes into .venv; the search
# client runs it as a subprocess (search_client/space/litert_convert.py) when a .tflite is asked for.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${LITERT_VENV:-.venv-litert}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi
# Only the converter: the search client hands it a saved torch.export program (search_client/space/litert.py),
# so none of this project's code runs here; torch must be the same release as in .venv to load that program.
"$VENV/bin/python" -m pip install -q "litert-torch>=0.10"
echo "LiteRT converter ready: $VENV ($("$VENV/bin/python" -c 'import importlib.metadata as m; print("litert-torch", m.version("litert-torch"))'))"
