# Two commands on a fresh machine with Python 3.11+ and a C compiler:
#   make demo   -- build the environment and the extension, run the demo
#   make test   -- build the environment and the extension, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.omniroute-installed

.PHONY: demo test test-slow lint clean

$(STAMP): pyproject.toml setup.py core_ext/_kernel.pyx
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/omniroute demo

test: $(STAMP)
	OMNIROUTE_REQUIRE_COMPILED=1 $(BIN)/python -m pytest

test-slow: $(STAMP)
	OMNIROUTE_REQUIRE_COMPILED=1 HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check engine core_ext adapters tests
	$(BIN)/ruff format --check engine core_ext adapters tests
	rm -rf build/typecheck && mkdir -p build/typecheck/omniroute
	for d in engine core_ext adapters; do ln -s ../../../$$d build/typecheck/omniroute/$$d; done
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p omniroute

clean:
	rm -rf $(VENV) build *.egg-info core_ext/_kernel.c core_ext/_kernel.cpp core_ext/*.so
