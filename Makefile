# `make studio` sets everything up and opens the studio; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup studio test check bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# The CPU build of torch, pinned exactly so nothing pulls a multi-GB CUDA build.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

studio: setup
	$(VENV)/bin/remix studio

test: setup
	$(VENV)/bin/python -m pytest -q

check: setup
	../shared/checks/engine.sh

bench: setup
	$(VENV)/bin/python benchmarks/engine.py
