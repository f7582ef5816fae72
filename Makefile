# BeamHub: three commands.
#   make up    install what is needed, then start the platform at http://127.0.0.1:8000
#   make down  stop it, and every session and batch job it started (STATE_DIR=... for another folder)
#   make test  install what is needed (test tools and Debian's Chromium too), then run the whole suite
#
# Everything Python goes into .venv/ here, the Node services into node_modules/ here.  Each install
# step says what it installs, then how far it got every 15 s; its own output is shown only when it
# fails (in full), so a good install is a few lines, not pages of packaging warnings.

# Debian's /usr/bin/python3 where there is one: a venv points at its interpreter, and sessions that
# run as their users' own uids (hub started as root) must be able to reach it, which a Python
# under /root (pyenv) does not allow.
PYTHON ?= $(shell test -x /usr/bin/python3 && /usr/bin/python3 -c 'import ensurepip' 2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# gcc + libc6-dev: EMC's and gridrec's C kernels are compiled on first use (without them, numba loops run)
# docker.io + debootstrap: the images are built and smoke-tested for real (tests/images)
# containerd, runc, CNI plugins, iproute2: one real kubelet node runs a session pod (tests/images/test_real_node.py)
SYSTEM_PACKAGES := chromium prometheus prometheus-pushgateway openmpi-bin gcc libc6-dev docker.io debootstrap containerd runc containernetworking-plugins iproute2
PYTEST_ARGS ?=
# the platform's state folder (hub database, secrets, workspaces), for make up and make down
STATE_DIR ?= state
EXTRAS := .[hub,scheduler,mpi,test]

# A shell function for the recipes: `step TITLE PROGRESS COMMAND...` prints "make: TITLE ...", runs
# COMMAND with its output kept in a temporary file, prints every 15 s the elapsed time and what the
# shell function PROGRESS says (how far it got), then "done in N s" -- or, when COMMAND fails, its
# whole output and exit status.  Ctrl-C reaches COMMAND as well (same process group).
STEP = step() { \
  title="$$1"; progress="$$2"; shift 2; echo "make: $$title ..."; \
  log=$$(mktemp); start=$$(date +%s); next=15; \
  "$$@" >"$$log" 2>&1 & job=$$!; \
  while kill -0 $$job 2>/dev/null; do sleep 1; t=$$(( $$(date +%s) - start )); \
    if [ $$t -ge $$next ]; then echo "  ... $$t s: $$($$progress)"; next=$$(( next + 15 )); fi; \
  done; \
  if wait $$job; then echo "  done in $$(( $$(date +%s) - start )) s"; rm -f "$$log"; \
  else status=$$?; cat "$$log"; rm -f "$$log"; \
    echo "make: $$title: failed (exit status $$status); its whole output is above"; return $$status; fi; \
}; \
python_count() { echo "$$(ls -d $(VENV)/lib/python3*/site-packages/*.dist-info 2>/dev/null | wc -l) of about 165 Python packages in $(VENV); \
  pip: $$(grep -E '^(Collecting|Downloading|Building|Installing)' "$$log" | tail -n 1 \
  | sed 's/^Installing collected packages:.*/installing what it collected/' | cut -c1-70)"; }; \
venv_note() { echo "still creating $(VENV) (ensurepip installs pip into it)"; }; \
node_count() { echo "$$(ls node_modules 2>/dev/null | wc -l) of about 125 Node packages in node_modules"; }; \
apt_count() { echo "$$(ls /var/cache/apt/archives/*.deb 2>/dev/null | wc -l) Debian packages downloaded"; }


.PHONY: up down test lint install system-deps cluster cluster-build images clean help

help:
	@echo "make up    - start BeamHub at http://127.0.0.1:8000 (installs into .venv and node_modules first)"
	@echo "make down  - stop BeamHub, every session and every batch job it started"
	@echo "make test  - install everything the tests need and run the whole test suite"
	@echo "make lint  - ruff check and ruff format --check (the first step of make test)"
	@echo "make cluster - a real Kubernetes control plane (KWOK nodes) with the chart and the BeamHub scheduler"
	@echo "make images  - build the hub and session images with Docker (starts Debian's dockerd if needed)"

up: install
	@echo "make: installed; starting BeamHub ('make down' stops it with every session and job)"
	$(VENV)/bin/beamhub up --state-dir $(STATE_DIR)

# Not after install: stopping needs nothing new, and nothing of BeamHub runs without .venv.
down:
	@if [ -x $(VENV)/bin/beamhub ]; then $(VENV)/bin/beamhub down --state-dir $(STATE_DIR); \
	else echo "make down: BeamHub is not installed here (no $(VENV)), so none of it is running"; fi

# ruff's rules and version live in pyproject.toml; `make lint` alone, or as the first step of `make test`
lint: install
	@echo "make: ruff check and ruff format --check (rules in pyproject.toml [tool.ruff])"
	@$(VENV)/bin/ruff check --quiet . && $(VENV)/bin/ruff format --check --quiet . \
	  || { echo "make lint: fix the lines above ('$(VENV)/bin/ruff check --fix .; $(VENV)/bin/ruff format .')"; exit 1; }

test: install system-deps cluster-build lint
	@echo "make: installed; running the test suite (pytest $(PYTEST_ARGS))"
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
	@$(STEP); test -x $(PY) || step "[1/3] creating $(VENV) with $(PYTHON)" venv_note $(PYTHON) -m venv $(VENV) || exit; \
	step "[2/3] Python packages into $(VENV): BeamHub itself (editable) with JupyterHub, numpy, h5py, mpi4py, \
	pytest and Playwright (1-3 minutes the first time)" python_count \
	  sh -c "$(PIP) install --upgrade pip && $(PIP) install -e '$(EXTRAS)'"
	@touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 20+ and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	@$(STEP); step "[3/3] Node packages into node_modules: configurable-http-proxy and oidc-provider (npm ci)" node_count \
	  npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian packages the tests drive for real. As root they are installed; otherwise one line says what to do.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    $(STEP); step "Debian packages the tests drive for real:$$missing (apt-get; minutes the first time)" \
	      apt_count sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing" || exit; \
	  else \
	    echo "The tests need these Debian packages; install them as root: apt-get install$$missing"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) node_modules state .pytest_cache
