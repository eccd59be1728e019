# Thunderline: `make demo` and `make test` on a fresh machine (Python 3.11 required).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# TensorFlow/Keras/tf2onnx (the `convert` extra, ~2 GB): installed once per venv for `make test`
# and `make models`, never for `make demo`.
CONVERT_STAMP := $(VENV)/.convert-installed
# The private key that signs the committed models is never in the repository: pass it, e.g.
# `make models MODEL_SIGNING_KEY=../shared/signing/model_signing_key.pem`.
MODEL_SIGNING_KEY ?=
# A lock is the complete environment: every pin installed as written, nothing resolved at
# install time (--no-deps), then `pip check` proves the set is consistent (and
# tests/unit/test_locks.py proves each lock complete). pip is pinned too: the lock carries
# pip==…with its hash (pip-compile --allow-unsafe), so the first install replaces the venv's
# bundled pip and every later install (convert extra, editable project) runs the pinned one.
PIP_INSTALL := $(BIN)/python -m pip install -q --disable-pip-version-check
INSTALL_LOCK = $(PIP_INSTALL) --no-deps --require-hashes -r $(1) && $(BIN)/python -m pip check -q

.PHONY: venv convert demo test lint typecheck unit bench clean lock lock-convert lock-models models models-check sbom check-fresh

# (Re)create the virtualenv from the lock file when the lock or the project changes.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(call INSTALL_LOCK,requirements.lock)
	$(PIP_INSTALL) --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

$(CONVERT_STAMP): requirements-convert.lock $(STAMP)
	$(call INSTALL_LOCK,requirements-convert.lock)
	@touch $(CONVERT_STAMP)

convert: $(CONVERT_STAMP)

# `make models` only: the convert extra plus PyTorch and sentence-transformers (the `embed`
# extra), to export and validate the sentence-embedding model. A superset of the convert lock.
MODELS_STAMP := $(VENV)/.models-installed
$(MODELS_STAMP): requirements-models.lock $(CONVERT_STAMP)
	$(call INSTALL_LOCK,requirements-models.lock)
	@touch $(MODELS_STAMP)

demo: venv
	TL_ONNX_ENABLED=true $(BIN)/thunderline ingest examples/
	$(BIN)/thunderline voxels list

lint: venv
	$(BIN)/ruff check src tests benchmarks models scripts
	$(BIN)/ruff format --check src tests benchmarks models scripts

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

# Retrain, convert, validate and sign both models (seeded; a few minutes on 2 cores) and export
# the sentence-embedding model. Needs `apt-get install dataset-fashion-mnist` and the private key
# at MODEL_SIGNING_KEY.
models: $(MODELS_STAMP)
	@test -n "$(MODEL_SIGNING_KEY)" || { echo "make models: pass the private signing key, e.g. make models MODEL_SIGNING_KEY=../shared/signing/model_signing_key.pem" >&2; exit 2; }
	@test -r "$(MODEL_SIGNING_KEY)" || { echo "make models: cannot read MODEL_SIGNING_KEY=$(MODEL_SIGNING_KEY)" >&2; exit 2; }
	$(BIN)/python models/train_image.py --key $(MODEL_SIGNING_KEY)
	$(BIN)/python models/train_text.py --key $(MODEL_SIGNING_KEY)
	$(BIN)/python models/export_embedder.py --key $(MODEL_SIGNING_KEY)

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
	$(MAKE) lock-models

# The `convert` extra's lock: the whole environment (dev + convert), seeded from
# requirements.lock so every shared package keeps the same pin.
lock-convert: venv
	$(BIN)/python -m pip install -q --disable-pip-version-check pip-tools
	test -f requirements-convert.lock || cp requirements.lock requirements-convert.lock
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra=dev --extra=convert --output-file=requirements-convert.lock pyproject.toml

# `make models`' lock: dev + convert + embed, seeded from the convert lock (same shared pins).
lock-models: venv
	$(BIN)/python -m pip install -q --disable-pip-version-check pip-tools
	test -f requirements-models.lock || cp requirements-convert.lock requirements-models.lock
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra=dev --extra=convert --extra=embed --output-file=requirements-models.lock pyproject.toml

# The newcomer path on every CI run: clone this repository's HEAD into a temporary folder and
# run `make demo` there with an empty pip cache; checks its exit code and the voxel count.
check-fresh:
	$(PYTHON) scripts/check_fresh.py

# the convert extra: benchmarks/convert.py measures Keras -> ONNX conversion
bench: venv convert
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .thunderline .mypy_cache .ruff_cache .pytest_cache
