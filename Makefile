# One tooling contract: CI runs exactly these targets (see .ci/run).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: setup venv lint test unit demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# Docker engine, the offline base image and the test images: idempotent, seconds when done.
setup: venv
	bash scripts/setup.sh

lint: venv
	$(BIN)/ruff check src tests bench scripts images
	$(BIN)/ruff format --check src tests bench scripts images
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest

unit: venv
	$(BIN)/pytest tests/unit

demo: setup
	$(BIN)/python scripts/demo.py

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
