.PHONY: venv demo test lint

venv:
	./scripts/setup-venv.sh

# The main job: server (SQLite) + agent for this host + LUT + DNAS search on digits + training + end-to-end latency.
demo: venv
	.venv/bin/python scripts/demo.py

test: venv
	.venv/bin/python -m pytest -q

lint: venv
	.venv/bin/ruff check .
