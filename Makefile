# The two commands a newcomer needs: `make demo` and `make test`. Each creates or
# updates .venv on its own.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export KERAS_BACKEND := torch

.PHONY: demo test fuzz lint typecheck check format bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	# The demo reads JapaneseVowels from the aeon wheel's data files only, so none of
	# aeon's own dependencies are needed.
	$(PY) -m pip install -q -c constraints.txt --no-deps aeon
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m birnn.examples.japanese_vowels

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

# A long local soak of the property suite (tests/properties): random examples instead of
# the fixed CI set, FUZZ_EXAMPLES per test.
FUZZ_EXAMPLES ?= 2000
fuzz: $(STAMP)
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

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) demo_output .mypy_cache
