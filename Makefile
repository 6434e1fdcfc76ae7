# The two commands of the README: `make serve` and `make test`.
# Both create .venv on first use and install what they need into it.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test lint typecheck pytest clean

$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test: $(VENV)/.base pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

serve: $(VENV)/.base
	$(VENV)/bin/reactor serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.test
	$(VENV)/bin/ruff check reactor tests tools docs
	$(VENV)/bin/ruff format --check reactor tests tools docs

typecheck: $(VENV)/.test
	$(VENV)/bin/mypy --strict reactor

pytest: $(VENV)/.test
	$(PY) -m pytest -q

test: lint typecheck pytest

# `make leakcheck`: `reactor leakcheck`'s built-in suite at 1000 requests per scenario, under a
# minute (make test runs a 30-request pass; LEAKCHECK_REQUESTS=5000 for a longer one).
LEAKCHECK_REQUESTS ?= 1000
.PHONY: leakcheck
leakcheck: $(VENV)/.test
	$(PY) tools/leakcheck.py --requests $(LEAKCHECK_REQUESTS) --summary leakcheck-summary.md

# `make test-matrix`: the tests on every Python the package supports (3.11, 3.12, 3.13), each in
# its own venv under build/ (the interpreter: pythonX.Y on PATH, else pyenv's); a version whose
# interpreter is not on this machine is reported and skipped (make test stays on one version).
MATRIX ?= 3.11 3.12 3.13
.PHONY: test-matrix
test-matrix:
	@status=0; missing=""; \
	for v in $(MATRIX); do \
		py=$$(command -v python$$v); \
		$$py -c '' 2>/dev/null || py=$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v*/bin/python$$v 2>/dev/null | tail -n 1); \
		[ -n "$$py" ] && $$py -c '' 2>/dev/null || { missing="$$missing $$v"; continue; }; \
		venv=build/venv-$$v; echo "== Python $$v ($$py)"; \
		{ test -x $$venv/bin/python || $$py -m venv $$venv; } && \
		$$venv/bin/python -m pip install --quiet -e '.[test]' && \
		$$venv/bin/python -m pytest -q -p no:cacheprovider || status=1; \
	done; \
	[ -z "$$missing" ] || echo "test-matrix: no interpreter for Python$$missing (skipped)"; \
	exit $$status

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# `make bench` (`make bench QUICK=1`: under 2 minutes): reactor against its peers with wrk,
# written to docs/benchmarks.md (quick: build/bench/quick.md). Peers go into their own venv;
# wrk comes from Debian. BENCH_ARGS passes more options to tools/bench/run.py.
BENCH_VENV := build/bench-venv
BENCH_PY := $(BENCH_VENV)/bin/python

.PHONY: bench

$(BENCH_VENV)/.installed: tools/bench/requirements.txt
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV) || python3 -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet -r tools/bench/requirements.txt
	touch $@

bench: $(BENCH_VENV)/.installed
	@command -v wrk >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y wrk; }
	BENCH_COMMAND="make bench$(if $(QUICK), QUICK=1)" $(BENCH_PY) tools/bench/run.py \
		$(if $(QUICK),--quick,--full) $(BENCH_ARGS)

# `make bench-instr` (about 7 minutes): CPU instructions per request under valgrind's callgrind,
# for reactor (selectors, asyncio and uvloop backends, WSGI) and uvicorn, in four scenarios
# (hello, post 1 KiB, 64k response, pipelined depth 16), plus the per-function profile of one
# reactor hello request (C functions from callgrind_annotate, Python functions from
# tools/bench/opcodes.py). Each server runs once under callgrind; per scenario the client
# (outside valgrind) sends N1 and then N2 requests over 16 connections, callgrind_control
# dumps the counts of each batch, and (I2 - I1) / (N2 - N1) cancels a batch's fixed cost out.
# Writes build/bench/instructions.json (read by `make bench` for the targets) and the section
# "## Instructions per request (make bench-instr)" of docs/benchmarks.md.
# INSTR_ARGS passes options to tools/bench/instructions.py, e.g. another checkout's reactor:
#   make bench-instr INSTR_ARGS="--reactor-src /tmp/baseline --servers reactor,uvicorn"
INSTR_ARGS ?=
.PHONY: bench-instr
bench-instr: $(BENCH_VENV)/.installed
	@command -v valgrind >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y valgrind; }
	$(BENCH_PY) tools/bench/instructions.py --json build/bench/instructions.json \
		--report docs/benchmarks.md $(INSTR_ARGS)

# `make soak` (10 minutes; `SOAK_SECONDS=60 make soak`): mixed load against `reactor serve`, RSS, objects and fds over time, flat after warm-up (docs/soak.md).
.PHONY: soak
soak: $(VENV)/.base
	$(PY) tools/soak/run.py --seconds $${SOAK_SECONDS:-600} $(SOAK_ARGS)
