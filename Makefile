# The README's two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup index run test test-fast bench eval clean

# torch is installed first and pinned: its 2.13.0 CPU wheel is on this machine, while an unpinned
# torch would pull several GB of CUDA packages.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

index: setup
	@if [ -e .policyqa/index ]; then echo "Index present (rebuild with: $(VENV)/bin/policyqa index)"; \
	else $(VENV)/bin/policyqa index; fi

run: index
	$(VENV)/bin/policyqa search "selling fake ID cards" -k 5

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow and not browser"

bench: setup
	$(PY) benchmarks/bench_retrieval.py

clean:
	rm -rf $(VENV) .policyqa
