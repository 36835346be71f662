# Groundswell: `make run` starts the whole system locally; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test bench clean up up-cluster down logs engine engine-stop secrets messages

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

# Every text people read is a message in shared/locale/<language>/LC_MESSAGES/messages.po. After changing
# one: `make messages`, translate what it marks new or fuzzy, and tests/unit/test_catalogs.py passes again.
KEYWORDS := -k N_ -k live:1,2 -k translate:2 -k translate_plural:2,3
messages: install  ## extract the messages and update every language's catalog
	$(BIN)/pybabel -q extract -F babel.cfg $(KEYWORDS) --no-location --sort-output --omit-header -o shared/locale/messages.pot services shared
	$(BIN)/pybabel -q update -i shared/locale/messages.pot -d shared/locale -w 120 --ignore-obsolete

engine:  ## a Docker engine: one that answers, or (as root on Debian) dockerd with its state in .data/docker
	@deploy/engine.sh start

engine-stop:  ## stop the engine `make engine` started, and remove what it left (bridges, firewall rules)
	@deploy/engine.sh stop

COMPOSE := docker compose -f deploy/compose.yml
SECRETS := GROUNDSWELL_ADMIN_TOKEN GROUNDSWELL_INTERNAL_TOKEN GROUNDSWELL_MAILBOX_KEY POSTGRES_PASSWORD
# Without SMTP_HOST (in the environment or deploy/.env) the stack sends its mail to Mailpit (--profile dev).
MAIL_PROFILE = $(if $(or $(SMTP_HOST),$(shell grep -s '^SMTP_HOST=.' deploy/.env)),,--profile dev)

secrets:  ## check that the four secrets compose requires are set (environment or deploy/.env)
	@missing=""; for name in $(SECRETS); do \
	  [ -n "$$(printenv $$name)" ] || grep -qs "^$$name=." deploy/.env || missing="$$missing $$name"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make up: missing$$missing. Set them (README, \"Deploy with docker compose\"), e.g.:" >&2; \
	  for name in $$missing; do echo "  export $$name=$$(openssl rand -hex 24 2>/dev/null || python3 -c 'import secrets; print(secrets.token_hex(24))')" >&2; done; \
	  exit 2; \
	fi

up: secrets  ## build and start the production stack (secrets: see `make secrets`; mail: SMTP_HOST, else Mailpit)
	$(COMPOSE) $(MAIL_PROFILE) up -d --build --wait
	@[ -z "$(MAIL_PROFILE)" ] || echo "No SMTP_HOST: mail goes to Mailpit, http://127.0.0.1:8025 (set SMTP_HOST for a real server)."
	@echo "Groundswell is up: http://127.0.0.1:$${GROUNDSWELL_WEB_PORT:-8080}/"

up-cluster: secrets  ## the same on a three-node NATS JetStream cluster
	$(COMPOSE) -f deploy/compose.cluster.yml $(MAIL_PROFILE) up -d --build --wait

# Stopping or reading logs needs no secret, but compose refuses the file while one is unset (a new
# shell without deploy/.env): fill the unset ones with a placeholder nothing is started with.
NO_SECRETS := $(foreach name,$(SECRETS),$(name)="$${$(name):-not-needed-to-stop}")

down:  ## stop the stack (the data stays in its volumes; `docker compose ... down -v` deletes it)
	@env $(NO_SECRETS) $(COMPOSE) --profile dev down

logs:
	@env $(NO_SECRETS) $(COMPOSE) --profile dev logs -f --tail=100
