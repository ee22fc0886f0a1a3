# keras-transformers: `make test` on a fresh machine creates .venv, installs the project and
# runs the suite (ruff, then pytest under TensorFlow, then the layer tests under JAX).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: install test test-tf test-jax lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev,jax]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .

test-tf: install
	$(BIN)/pytest -q

test-jax: install
	KERAS_BACKEND=jax $(BIN)/pytest -q tests/keras_transformers tests/zoo keras_transformers zoo

test: lint test-tf test-jax

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
