# soundscape: two commands set everything up on a fresh machine.
#   make demo   environment (when missing), then the main job, writing into ./out/
#   make test   environment and test tools (when missing), then the whole suite

SHELL := /bin/bash
PYTHON ?= python3
# uv from PATH, else a private copy installed with pip into .tools/ (no root needed).
UV := $(shell command -v uv 2>/dev/null || echo .tools/uv/bin/uv)
VENV := .venv
STAMP := $(VENV)/.soundscape-synced
# Benchmarks and tests measure one core at a time unless they say otherwise.
export OMP_NUM_THREADS ?= 1


.PHONY: demo test env banks tools postgres bench clean

env: $(STAMP)

.tools/uv/bin/uv:
	$(PYTHON) -m pip install --quiet --target .tools/uv uv

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --all-extras --compile-bytecode
	@touch $@

# The composer's sampled instruments: FluidSynth and the two MIT General MIDI sound banks.
banks:
	@bash scripts/ensure-banks.sh

# Programs some tests measure with (ffmpeg's ebur128, headless Chromium, poppler, flac):
# installed here when missing and when we may; tests that need one skip with the reason otherwise.
tools:
	@bash scripts/ensure-tools.sh

# The PostgreSQL server programs: the test run starts a private server of its own (unix socket
# only, in a temporary folder, as an unprivileged user) to run the ledger tests on PostgreSQL too.
postgres:
	@bash scripts/ensure-postgres.sh

demo: env banks
	$(VENV)/bin/python -m soundscape.demo --out out

test: env banks tools postgres
	$(VENV)/bin/python -m pytest -q

bench: env
	@for b in bench/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf out .pytest_cache
