# Groundswell: `make run` starts the whole system locally; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test bench clean up up-cluster down logs

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

run: install  ## the embedded default: nats-server, SQLite, SMTP sink, all services
	$(BIN)/groundswell dev

test: install  ## unit, contract, integration and end-to-end tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install  ## the viral-petition figures on SQLite and PostgreSQL (needs wrk: apt-get install wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf .data

COMPOSE := docker compose -f deploy/compose.yml

up:  ## build and start the production stack (needs GROUNDSWELL_ADMIN_TOKEN, GROUNDSWELL_INTERNAL_TOKEN, POSTGRES_PASSWORD)
	$(COMPOSE) up -d --build

up-cluster:  ## the same on a three-node NATS JetStream cluster
	$(COMPOSE) -f deploy/compose.cluster.yml up -d --build

down:
	$(COMPOSE) down

logs:
	$(COMPOSE) logs -f --tail=100
