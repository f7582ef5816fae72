# BeamHub: two commands.
#   make up    install what is needed, then start the platform at http://127.0.0.1:8000
#   make test  install what is needed (test tools and Debian's Chromium too), then run the whole suite
#
# Everything Python goes into .venv/ here, the Node services into node_modules/ here.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# gcc + libc6-dev: EMC's C kernels are compiled on first use (without them, numba loops run)
SYSTEM_PACKAGES := chromium prometheus prometheus-pushgateway openmpi-bin gcc libc6-dev
PYTEST_ARGS ?=

.PHONY: up test install system-deps clean help

help:
	@echo "make up    - start BeamHub at http://127.0.0.1:8000 (installs into .venv and node_modules first)"
	@echo "make test  - install everything the tests need and run the whole test suite"

up: install
	$(VENV)/bin/beamhub up

test: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[hub,scheduler,mpi,test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 20+ and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian packages the tests drive for real. As root they are installed; otherwise one line says what to do.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "The tests need these Debian packages; install them as root: apt-get install$$missing"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) node_modules state .pytest_cache
