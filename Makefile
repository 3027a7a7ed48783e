# `make studio` sets everything up and opens the studio; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup browser studio test check bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# The CPU build of torch, pinned exactly so nothing pulls a multi-GB CUDA build.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# The browser tests drive the system's Chromium (Playwright's own download is not used).
# Install it with apt when it is missing and apt can be used (as root, or with sudo that
# needs no password); otherwise say so and go on: those tests then skip with the reason.
CHROMIUM ?= chromium
browser:
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "browser tests: $(CHROMIUM) is missing and apt-get is not available; they will be skipped"; \
	  else \
	    if [ "$$(id -u)" = 0 ]; then as=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as="sudo -n"; else as="none"; fi; \
	    if [ "$$as" = none ]; then \
	      echo "browser tests: $(CHROMIUM) is missing and apt-get needs root; they will be skipped (sudo apt-get install chromium)"; \
	    else \
	      $$as env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	      $$as env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation \
	      || echo "browser tests: could not install chromium with apt-get; they will be skipped"; \
	    fi; \
	  fi; \
	}

studio: setup
	$(VENV)/bin/remix studio

test: setup browser
	$(VENV)/bin/python -m pytest -q

check: setup
	../shared/checks/engine.sh

bench: setup
	$(VENV)/bin/python benchmarks/engine.py
