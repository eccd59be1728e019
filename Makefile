# Thunderline: `make demo` and `make test` on a fresh machine (Python 3.11 required).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# TensorFlow/Keras/tf2onnx (the `convert` extra, ~2 GB): installed once per venv for `make test`
# and `make models`, never for `make demo`.
CONVERT_STAMP := $(VENV)/.convert-installed
# The private key that signs the committed models. It is never in the repository.
MODEL_SIGNING_KEY ?= /work/signing/model_signing_key.pem

.PHONY: venv convert demo test lint typecheck unit bench clean lock lock-convert models models-check sbom

# (Re)create the virtualenv from the lock file when the lock or the project changes.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

$(CONVERT_STAMP): requirements-convert.lock $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements-convert.lock
	@touch $(CONVERT_STAMP)

convert: $(CONVERT_STAMP)

demo: venv
	TL_ONNX_ENABLED=true $(BIN)/thunderline ingest examples/
	$(BIN)/thunderline voxels list

lint: venv
	$(BIN)/ruff check src tests benchmarks models
	$(BIN)/ruff format --check src tests benchmarks models

typecheck: venv
	$(BIN)/mypy

# CI gate for the model registry: checksums, signatures, permissions and external data of every
# model (`models verify`), then Keras vs ONNX Runtime re-validated (reports outside the signed
# folders); any FAIL, drifted checksum or bad signature fails `make test`.
models-check: convert
	$(BIN)/thunderline models verify
	$(BIN)/thunderline models validate --report-dir .thunderline/val

test: venv convert lint typecheck models-check
	$(BIN)/pytest

# Retrain, convert, validate and sign both models (seeded; a few minutes on 2 cores). Needs
# `apt-get install dataset-fashion-mnist` and the private key at MODEL_SIGNING_KEY.
models: convert
	$(BIN)/python models/train_image.py --key $(MODEL_SIGNING_KEY)
	$(BIN)/python models/train_text.py --key $(MODEL_SIGNING_KEY)

# CycloneDX 1.6 SBOM of the installed environment plus the model files (with SHA-256).
sbom: venv
	$(BIN)/cyclonedx-py environment --of JSON --sv 1.6 --output-reproducible -o sbom.cdx.json $(BIN)/python
	$(BIN)/python -m thunderline.ml.sbom sbom.cdx.json --models models

# Regenerate the hash-pinned lock after changing dependencies in pyproject.toml (keeps existing
# pins; add --upgrade-package NAME to move one). No machine-local index paths are written.
LOCK_FLAGS := -q --allow-unsafe --strip-extras --generate-hashes --no-emit-index-url --no-emit-find-links
lock: venv
	$(BIN)/python -m pip install -q --disable-pip-version-check pip-tools
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra=dev --output-file=requirements.lock pyproject.toml
	$(MAKE) lock-convert

# The `convert` extra's lock: the whole environment (dev + convert), seeded from
# requirements.lock so every shared package keeps the same pin.
lock-convert: venv
	$(BIN)/python -m pip install -q --disable-pip-version-check pip-tools
	test -f requirements-convert.lock || cp requirements.lock requirements-convert.lock
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra=dev --extra=convert --output-file=requirements-convert.lock pyproject.toml

bench: venv
	for b in classify onnx_infer voxel_store nlp; do $(BIN)/python benchmarks/$$b.py; done

clean:
	rm -rf $(VENV) .thunderline .mypy_cache .ruff_cache .pytest_cache
