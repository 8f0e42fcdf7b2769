# One command for the demo, one for the tests; both set up .venv on first use.
#   make demo   - the offline demo sweep (synthetic world, all five methods, embedded local Ray)
#   make test   - the whole test suite (what CI runs)
#   make bench  - the benchmarks (append their figures to BENCHMARKS.md)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Where no GPU is present the CPU build of torch is installed (on this project's machines
# `pip install torch==2.13.0` finds it locally; elsewhere set
# TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu").
TORCH ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: setup demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/pip install --quiet "$(TORCH)"; \
	else \
		$(BIN)/pip install --quiet "$(TORCH)" $(TORCH_INDEX); \
	fi
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,bench,distances,tracking]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m sweeper demo

test: setup
	$(BIN)/python -m pytest

bench: setup
	for script in benchmarks/bench_*.py; do HF_HUB_OFFLINE=1 $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
