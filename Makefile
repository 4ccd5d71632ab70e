# The two commands of the README: `make devnet` and `make test`. Both bootstrap themselves.
.PHONY: bootstrap devnet test lint artifacts

VENV := .venv/bin

bootstrap:
	@scripts/bootstrap.sh

devnet: bootstrap
	@scripts/ensure-prometheus.sh
	@scripts/ensure-faketime.sh >/dev/null
	$(VENV)/ha-sequencer devnet up $(ARGS)

PYRIGHT := node_modules/.bin/pyright

lint: bootstrap
	$(VENV)/ruff check src tests benchmarks
	$(VENV)/ruff format --check src tests benchmarks
	$(PYRIGHT)

test: bootstrap
	@scripts/ensure-postgres.sh
	@scripts/ensure-store-cluster.sh
	@scripts/ensure-prometheus.sh
	@scripts/ensure-aztec.sh >/dev/null
	@scripts/ensure-faketime.sh >/dev/null
	$(VENV)/ruff check src tests benchmarks
	$(PYRIGHT)
	$(VENV)/python -m pytest $(PYTEST_ARGS)

artifacts: bootstrap
	$(VENV)/ha-sequencer l1 build
