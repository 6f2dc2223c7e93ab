# The two things most people want: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test bench bootstrap up down status asyncapi lint

demo: bootstrap
	$(UV) run --frozen demo

test: bootstrap
	$(UV) run --frozen pytest

# The throughput figures on the local stack (docs/BENCHMARKS.md says which and how), appended
# there: PRESET=full for the long one (up to an hour), ONLY=replay,gateway for some of them.
bench: bootstrap
	$(UV) run --frozen python -m tests.bench.bench_pipeline --preset $(or $(PRESET),quick) \
		$(if $(ONLY),--only $(ONLY)) --write

bootstrap:
	@deploy/local/bootstrap.sh

up: bootstrap
	$(UV) run --frozen stack up

down: bootstrap
	$(UV) run --frozen stack down

status: bootstrap
	$(UV) run --frozen stack status

asyncapi: bootstrap
	$(UV) run --frozen python -m contracts.asyncapi > contracts/asyncapi.json

lint: bootstrap
	$(UV) run --frozen ruff check .
