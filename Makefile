# Two commands on a fresh machine with Python 3.11+ and a C compiler:
#   make demo   -- build the environment and the extension, run the demo
#   make test   -- build the environment and the extension, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.omniroute-installed

.PHONY: demo test test-slow lint imports tree clean

$(STAMP): pyproject.toml setup.py core_ext/_kernel.pyx
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/omniroute demo

test: imports
	OMNIROUTE_REQUIRE_COMPILED=1 $(BIN)/python -m pytest

test-slow: $(STAMP)
	OMNIROUTE_REQUIRE_COMPILED=1 HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest -m slow

# The three folders as one `omniroute` tree of links, for tools that walk files (the editable
# install maps the names with an import hook they cannot follow).
tree: $(STAMP)
	rm -rf build/typecheck && mkdir -p build/typecheck/omniroute
	for d in engine core_ext adapters; do ln -s ../../../$$d build/typecheck/omniroute/$$d; done

# The dependency rule: import-linter contracts in pyproject.toml (docs/architecture.md).
imports: tree
	cd build/typecheck && PYTHONPATH=. ../../$(BIN)/lint-imports ../../pyproject.toml

lint: imports
	$(BIN)/ruff check engine core_ext adapters tests benchmarks
	$(BIN)/ruff format --check engine core_ext adapters tests benchmarks
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p omniroute

clean:
	rm -rf $(VENV) build *.egg-info core_ext/_kernel.c core_ext/_kernel.cpp core_ext/*.so
