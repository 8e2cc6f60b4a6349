# The README's commands: `make demo`, `make test` and `make bench`. Each sets everything up itself
# from a fresh clone (venv, pinned Python packages, npm toolchain, the Rust extension) and
# downloads nothing at run time.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solc
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)

.PHONY: setup test test-suite lint demo bench clean rust contracts postgres mosquitto

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

# Debian's mosquitto for the oracle's MQTT tests (each test starts its own broker on loopback).
mosquitto:
	scripts/ensure_mosquitto.sh

# ruff (rules in pyproject.toml [tool.ruff]) over the whole tree; mypy over the packages listed
# in [tool.mypy] files.
lint: $(VENV)/.deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# What the work tree looks like to git: a clean clone must look the same after `make test`.
TREE_STATE := { git status --porcelain --untracked-files=all; git diff HEAD | sha256sum; } 2>/dev/null

# `make test`: lint, set up, the Rust core's own tests, the whole pytest suite (which also runs
# every bench/NAME.py once with --quick), then a check that none of it changed the work tree
# (whatever the suite writes belongs in a temp dir or in .gitignore).
test:
	@before="$$($(TREE_STATE))"; \
	$(MAKE) --no-print-directory test-suite || exit $$?; \
	after="$$($(TREE_STATE))"; \
	if [ "$$before" != "$$after" ]; then \
		echo "make test: the suite changed the work tree (git status before / after):" >&2; \
		diff <(echo "$$before") <(echo "$$after") >&2; \
		echo "make test: write such files to a temp dir or list them in .gitignore" >&2; \
		exit 1; \
	fi

test-suite: lint setup postgres mosquitto
	cd rust_core && cargo test --release --quiet
	$(PY) -m pytest --network ethereum:local:foundry

# The neighbourhood demo: ape starts anvil (paris), the demo deploys, runs a simulated day of
# 96 periods through meters, oracles and three nodes, and audits it (scripts/_demo.py).
demo: setup
	$(VENV)/bin/ape run demo --network ethereum:local:foundry

# Every benchmark at full size, each as the README says (`.venv/bin/python bench/NAME.py`).
bench: setup
	for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

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

tools/geth/bin/geth: $(VENV)/.deps
	$(PY) -m devnet geth

network: $(VENV)/.deps tools/geth/bin/geth
	$(PY) -m devnet start --signers $(SIGNERS) --period $(BLOCK_PERIOD)

network-stop:
	$(PY) -m devnet stop

# the network tests (tests/network/) run on geth signers (built once, after the venv exists)
test-suite: tools/geth/bin/geth
