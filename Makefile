# Two commands set everything up on a fresh machine, idempotently:
#   make test   -- create .venv, install torch (CPU) + ebmlab with all extras, run the tests
#   make demo   -- same set-up, then the main job
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ebmlab-installed
PYTHON ?= python3
# test processes (pytest-xdist): each test runs on one torch thread, so two workers use both cores of a 2-core
# machine; whole modules in collection order, the long browser modules first
WORKERS ?= 2

.PHONY: install test demo lint bench screenshots

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[jupyter,dask,dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n $(WORKERS) --dist loadgroup --no-loadscope-reorder

demo: $(STAMP)
	$(VENV)/bin/ebmlab demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Refresh the README screenshots (docs/images/*.png) from the browser tests; plain test runs never write there.
screenshots: $(STAMP)
	EBMLAB_SCREENSHOTS=$(CURDIR)/docs/images $(PY) -m pytest -q tests/browser/test_dashboard.py \
		tests/browser/test_comparison.py tests/browser/test_teaching.py
