# BeamHub: two commands.
#   make up    install what is needed, then start the platform at http://127.0.0.1:8000
#   make test  install what is needed (test tools and Debian's Chromium too), then run the whole suite
#
# Everything Python goes into .venv/ here, the Node services into node_modules/ here.

# Debian's /usr/bin/python3 where there is one: a venv points at its interpreter, and sessions that
# run as their users' own uids (hub started as root) must be able to reach it, which a Python
# under /root (pyenv) does not allow.
PYTHON ?= $(shell test -x /usr/bin/python3 && /usr/bin/python3 -c 'import ensurepip' 2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# gcc + libc6-dev: EMC's C kernels are compiled on first use (without them, numba loops run)
# docker.io + debootstrap: the images are built and smoke-tested for real (tests/images)
SYSTEM_PACKAGES := chromium prometheus prometheus-pushgateway openmpi-bin gcc libc6-dev docker.io debootstrap
PYTEST_ARGS ?=

.PHONY: up test install system-deps cluster cluster-build images clean help

help:
	@echo "make up    - start BeamHub at http://127.0.0.1:8000 (installs into .venv and node_modules first)"
	@echo "make test  - install everything the tests need and run the whole test suite"
	@echo "make cluster - a real Kubernetes control plane (KWOK nodes) with the chart and the BeamHub scheduler"
	@echo "make images  - build the hub and session images with Docker (starts Debian's dockerd if needed)"

up: install
	$(VENV)/bin/beamhub up

test: install system-deps cluster-build
	$(PY) -m pytest $(PYTEST_ARGS)

# kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok and helm from the pinned Go
# modules in deploy/cluster/, built once into ~/.cache/beamhub/cluster/<version> (30-40 min on 2 cores
# on a fresh machine, seconds after that).
cluster-build:
	@command -v go >/dev/null || { echo "Go is needed to build the Kubernetes control plane (Debian: apt-get install golang)"; exit 1; }
	@deploy/cluster/build.sh --print >/dev/null 2>&1 || echo "building the Kubernetes control plane once (cached by version; ~30-40 min on 2 cores) ..."
	@start=$$(date +%s); deploy/cluster/build.sh >/dev/null && echo "control plane binaries ready ($$(( $$(date +%s) - start )) s)"

images: install system-deps
	$(PY) images/build.py

cluster: install cluster-build
	$(PY) deploy/cluster/beamhub_cluster.py

install: $(VENV)/.installed node_modules/.installed
	@# As root, sessions run as the users' own uids (isolated mode) and must reach .venv: every folder
	@# above the checkout needs search permission for others (o+x; not read: nothing is listed).
	@if [ "$$(id -u)" = 0 ]; then d="$(CURDIR)"; while [ "$$d" != "/" ]; do \
	  if [ -z "$$(find "$$d" -maxdepth 0 -perm -o=x)" ]; then \
	    echo "make: granting search permission (o+x, not read) on $$d, so users' sessions can reach BeamHub's Python"; \
	    chmod o+x "$$d"; fi; \
	  d="$$(dirname "$$d")"; done; fi

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
