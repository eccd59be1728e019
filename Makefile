# Thunderline: `make demo` and `make test` on a fresh machine (Python 3.11 required).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint typecheck unit bench clean lock

# (Re)create the virtualenv from the lock file when the lock or the project changes.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

demo: venv
	TL_ONNX_ENABLED=true $(BIN)/thunderline ingest examples/
	$(BIN)/thunderline voxels list

lint: venv
	$(BIN)/ruff check src tests benchmarks models
	$(BIN)/ruff format --check src tests benchmarks models

typecheck: venv
	$(BIN)/mypy

test: venv lint typecheck
	$(BIN)/pytest

# Regenerate the hash-pinned lock after changing dependencies in pyproject.toml (keeps existing
# pins; add --upgrade-package NAME to move one). No machine-local index paths are written.
LOCK_FLAGS := -q --allow-unsafe --strip-extras --generate-hashes --no-emit-index-url --no-emit-find-links
lock: venv
	$(BIN)/python -m pip install -q --disable-pip-version-check pip-tools
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra=dev --output-file=requirements.lock pyproject.toml

bench: venv
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .thunderline .mypy_cache .ruff_cache .pytest_cache
