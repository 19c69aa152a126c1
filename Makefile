.PHONY: venv demo test lint

venv:
	./scripts/setup-venv.sh

test: venv
	.venv/bin/python -m pytest -q

lint: venv
	.venv/bin/ruff check .
