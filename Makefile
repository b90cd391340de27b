# The README's two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

PORT ?= 8501

.PHONY: setup browser index run search test test-fast fuzz bench screenshots clean

# torch is installed first and pinned: its 2.13.0 CPU wheel is on this machine, while an unpinned
# torch would pull several GB of CUDA packages.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,ray]'
	touch $(STAMP)

setup: $(STAMP)

index: setup
	@if [ -e .policyqa/index ]; then echo "Index present (rebuild with: $(VENV)/bin/policyqa index)"; \
	else $(VENV)/bin/policyqa index; fi

# The main job: the web app on the embedded defaults (offline engine, packaged model).
run: index
	@echo "PolicyQA is starting at http://localhost:$(PORT) (Ctrl+C stops it)"
	$(VENV)/bin/streamlit run app/streamlit_app.py --server.port $(PORT) --server.headless true --browser.gatherUsageStats false

search: index
	$(VENV)/bin/policyqa search "selling fake ID cards" -k 5

# Debian's Chromium (and CJK fonts) for the browser test: pip cannot install them. The browser test
# fails rather than skips when POLICYQA_REQUIRE_BROWSER is set, so `make test` never passes without it.
browser:
	@scripts/ensure-browser

test: setup browser
	POLICYQA_REQUIRE_BROWSER=1 $(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow and not browser"

# 10,000 arbitrary texts through judge and ask each (the test suite runs 500), with the outcome counts.
fuzz: setup
	FUZZ_EXAMPLES=10000 $(PY) -m pytest tests/test_fuzz.py -s -q --timeout 0

bench: setup
	$(PY) benchmarks/bench_retrieval.py
	$(PY) benchmarks/bench_ruling.py
	$(PY) benchmarks/bench_build.py --sample 1500
	$(PY) benchmarks/bench_serving.py
	$(PY) benchmarks/bench_input_cost.py

# Copies the screenshots the browser test took into docs/ for the README.
screenshots:
	mkdir -p docs/screenshots && cp test-artifacts/screenshots/*.png docs/screenshots/

clean:
	rm -rf $(VENV) .policyqa
