# The two commands a newcomer needs: `make demo` and `make test`. Each creates or
# updates .venv on its own.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export KERAS_BACKEND := torch

.PHONY: demo test fuzz lint typecheck check format bench bench-peers gpu-check clean native

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	# The demo reads JapaneseVowels from the aeon wheel's data files only, so none of
	# aeon's own dependencies are needed.
	$(PY) -m pip install -q -c constraints.txt --no-deps aeon
	touch $(STAMP)

# birnn's native LSTM/GRU kernels, compiled once per machine against the installed torch
# (birnn.ops.native_build; a no-op when current). Without a C++ compiler birnn runs on
# PyTorch's kernels instead.
native: $(STAMP)
	@$(PY) -m birnn.ops.native_build >/dev/null || \
		echo "native: not built; birnn will use PyTorch's RNN kernels"

demo: native
	$(PY) -m birnn.examples.japanese_vowels

test: native
	$(PY) -m pytest -n 2 -q

# A long local soak of the property suite (tests/properties): random examples instead of
# the fixed CI set, FUZZ_EXAMPLES per test.
FUZZ_EXAMPLES ?= 2000
fuzz: native
	BIRNN_HYPOTHESIS_PROFILE=fuzz BIRNN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		$(PY) -m pytest -n 2 -q tests/properties

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

# Everything CI checks, in its order: lint, types, then the tests.
check: lint typecheck test

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

# `make bench` times birnn against hand torch and Keras on torch, and against Keras on
# TensorFlow and on JAX when `make bench-peers` has created their environments (each in
# its own venv under .bench, never needed by the tests); it writes benchmarks/RESULTS.md.
BENCH_VENVS := .bench
PEER_STAMPS := $(BENCH_VENVS)/keras-tf/.installed $(BENCH_VENVS)/keras-jax/.installed

bench: native
	@for peer in keras-tf keras-jax; do test -x $(BENCH_VENVS)/$$peer/bin/python || \
		echo "bench: no $(BENCH_VENVS)/$$peer: run \`make bench-peers\` to time Keras on it too"; done
	$(PY) benchmarks/run.py

bench-peers: $(PEER_STAMPS)

$(BENCH_VENVS)/keras-%/.installed: benchmarks/requirements-keras-%.txt
	test -x $(BENCH_VENVS)/keras-$*/bin/python || $(PYTHON) -m venv $(BENCH_VENVS)/keras-$*
	$(BENCH_VENVS)/keras-$*/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENVS)/keras-$*/bin/python -m pip install -q -r $<
	touch $@

# On a machine with a CUDA GPU: the CUDA tests and the bench rows on the GPU, results in
# GPU_OUT (see benchmarks/gpu_check.sh).
GPU_OUT ?= gpu_check_output
gpu-check:
	bash benchmarks/gpu_check.sh $(GPU_OUT)

clean:
	rm -rf $(VENV) $(BENCH_VENVS) demo_output gpu_check_output .mypy_cache
