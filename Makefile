# The two commands a user needs: `make run` and `make test`. Both build the virtualenv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: system-deps run test test-unit test-integration test-e2e chaos bench install topics-apply deploy-tools deploy-gen lint format openapi avro catalog clickhouse-ddl clean help

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml devstack/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "Python 3.11 is required (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,embedded]' -e ./devstack
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned dependencies

system-deps:  ## Debian packages some tests use (stunnel4: the TLS tests; they install it themselves when apt is there)
	command -v stunnel4 >/dev/null || { apt-get update -qq && apt-get install -y -qq stunnel4; }

run: $(STAMP)  ## start the embedded stack (broker, PostgreSQL, bridge, workers, emulators, demo load)
	$(BIN)/mmctl run $(ARGS)

test: $(STAMP)  ## run the test suite against a broker and PostgreSQL it starts itself
	$(BIN)/python scripts/test_all.py $(ARGS)

# The tiers split `make test` (together they run every test once); tests/conftest.py marks a
# test `integration` from the fixtures it uses.
# The unit tier shares no port, file or server between tests, so it runs on two pytest-xdist
# workers (worksteal: a few tests take seconds, most milliseconds). `make test` runs two
# sessions side by side already and gets no workers; ARGS=-n0 runs the tier in one process.
test-unit: $(STAMP)  ## the pure tests only: no broker, no PostgreSQL, no pipeline processes (< 2 min)
	TEST_TIER=unit $(BIN)/python -m pytest -n 2 --dist worksteal -m "not integration and not e2e" $(ARGS)

test-integration: $(STAMP)  ## the tests against the real broker / PostgreSQL, without the e2e ones
	$(BIN)/python -m pytest -m "integration and not e2e" $(ARGS)

test-e2e: $(STAMP)  ## the end-to-end tests: bridge, workers and emulators as processes
	$(BIN)/python -m pytest -m e2e $(ARGS)

chaos: $(STAMP)  ## the fault and abuse scenarios (<= 20 min; ARGS=--quick <= 5 min), report in chaos-results/latest.json
	$(BIN)/python -m pytest tests/chaos --chaos $(ARGS)

bench: $(STAMP)  ## run the benchmarks, JSON report in bench-results/
	$(BIN)/mmctl bench $(ARGS)

topics-apply: $(STAMP)  ## create missing topics from topics.yaml on MM_KAFKA__BOOTSTRAP_SERVERS
	$(BIN)/mmctl topics apply

clean:  ## remove the virtualenv and the embedded data
	rm -rf $(VENV) .data

deploy-tools:  ## install the validators tests/deploy runs (promtool, amtool, Alertmanager, kubectl) from Debian's packages
	apt-get update -qq && apt-get install -y -qq prometheus prometheus-alertmanager kubectl

deploy-gen: $(STAMP)  ## regenerate deploy/k8s/kafkatopics.yaml and prometheusrule.yaml (a test fails when stale)
	$(BIN)/python deploy/gen_kafkatopics.py
	$(BIN)/python deploy/gen_prometheusrule.py

PY_SOURCES := mmstream stages connectors devstack tests scripts deploy

lint: $(STAMP)  ## static checks (ruff check + format check, the layer contracts, mypy)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)  # `make format` rewrites
	$(BIN)/lint-imports --no-cache  # the layer map: [tool.importlinter] in pyproject.toml
	$(BIN)/mypy  # the packages and settings are in pyproject.toml [tool.mypy]

format: $(STAMP)  ## rewrite the Python sources in the one format `make lint` checks
	$(BIN)/ruff format $(PY_SOURCES)

avro: $(STAMP)  ## regenerate avro/<entity>.avsc from the canonical models (a test fails when stale)
	$(BIN)/python scripts/gen_avro.py

catalog: $(STAMP)  ## regenerate docs/topic-catalog.md from topics.yaml and avro/ (a test fails when stale)
	$(BIN)/python scripts/gen_topic_catalog.py

clickhouse-ddl: $(STAMP)  ## regenerate docs/analytics/clickhouse.sql from topics.yaml and avro/ (a test fails when stale)
	$(BIN)/python scripts/gen_clickhouse_ddl.py

openapi: $(STAMP)  ## regenerate openapi.yaml from the bridge (a test fails when it is stale)
	$(BIN)/python scripts/gen_openapi.py
