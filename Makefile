.PHONY: venv litert-converter demo test lint

venv:
	./scripts/setup-venv.sh

# The LiteRT converter in its own environment (.venv-litert): the .tflite tests compile with it.
litert-converter:
	./scripts/setup-litert-converter.sh

# The main job: server (SQLite) + agent for this host + LUT + DNAS search on digits + training + end-to-end latency.
demo: venv
	.venv/bin/python scripts/demo.py

test: venv litert-converter
	.venv/bin/python -m pytest -q

lint: venv
	.venv/bin/ruff check .
