# The two things most people want: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
# A machine may set PYTHONDONTWRITEBYTECODE: then every process compiles each module it imports
# from source, which is most of a service's start-up (about 2 s of CPU each, and the demo and
# the tests start many). The compiled files stay in .venv and __pycache__ folders git ignores.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test bench bootstrap runtime up down status asyncapi lint

# The demo and the stack commands install only what they run (no test tools, no browser):
# `runtime` is deploy/local/bootstrap.sh's demo mode; `bootstrap` adds what the tests need.
RUN := $(UV) run --frozen --no-dev

demo: runtime
	$(RUN) demo

# The suite in parallel (pytest-xdist, docs/adr/0024-parallel-tests.md): TEST_WORKERS=0 runs it in
# this process alone.
test: bootstrap
	$(UV) run --frozen pytest -n $(or $(TEST_WORKERS),4) --dist loadgroup

# The throughput figures on the local stack (docs/BENCHMARKS.md says which and how), appended
# there: PRESET=full for the long one (up to an hour), ONLY=replay,gateway for some of them.
bench: bootstrap
	$(UV) run --frozen python -m tests.bench.bench_pipeline --preset $(or $(PRESET),quick) \
		$(if $(ONLY),--only $(ONLY)) --write

bootstrap:
	@deploy/local/bootstrap.sh

runtime:
	@deploy/local/bootstrap.sh demo

up: runtime
	$(RUN) stack up

down: runtime
	$(RUN) stack down

status: runtime
	$(RUN) stack status

asyncapi: bootstrap
	$(UV) run --frozen python -m contracts.asyncapi > contracts/asyncapi.json

lint: bootstrap
	$(UV) run --frozen ruff check .
