# The README's two commands: `make demo` and `make test`. Both set everything up themselves
# from a fresh clone (venv, pinned Python packages, npm toolchain, the Rust extension) and
# download nothing at run time.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solc
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)

.PHONY: setup test demo bench clean rust contracts postgres

setup: $(VENV)/.deps node_modules/.deps rust contracts

$(VENV)/.deps: requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $@

node_modules/.deps: package.json package-lock.json
	# `npm install` honours package-lock.json; `npm ci` refuses this lock because npm 11 leaves
	# anvil's other-platform optional packages out of it.
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# Builds rust_core into the venv (editable: the repo root goes on sys.path, so node/ and
# meter_oracle/ import from the work tree). Cargo makes a no-op rebuild cheap.
rust: $(VENV)/.deps
	$(VENV)/bin/maturin develop --release --quiet

# --force: ape recompiles only the files that changed, not the contracts that inherit from them.
contracts: $(VENV)/.deps node_modules/.deps
	$(VENV)/bin/ape compile --force

postgres:
	scripts/ensure_postgres.sh

test: setup postgres
	cd rust_core && cargo test --release --quiet
	$(PY) -m pytest --network ethereum:local:foundry

# The neighbourhood demo: ape starts anvil (cancun), the demo deploys, runs a simulated day of
# 96 periods through meters, oracles and three nodes, and audits it (scripts/_demo.py).
demo: setup
	$(VENV)/bin/ape run demo --network ethereum:local:foundry

bench: setup
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules .build rust_core/target

# --- the multi-operator Clique network (issue 12; devnet/) ---------------------------------
# geth v1.13.15 from the Go module proxy into tools/geth/ (once); `make network` starts
# SIGNERS validators on loopback (state, keys and chain in var/network/) and prints their RPC
# URLs; `ape run deploy --network ethereum:settlement:node ...` deploys on it.
.PHONY: geth network network-stop
SIGNERS ?= 3
BLOCK_PERIOD ?= 2

geth: tools/geth/bin/geth

tools/geth/bin/geth:
	$(PY) -m devnet geth

network: $(VENV)/.deps tools/geth/bin/geth
	$(PY) -m devnet start --signers $(SIGNERS) --period $(BLOCK_PERIOD)

network-stop:
	$(PY) -m devnet stop
