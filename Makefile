# mm-assets: every target sets itself up from nothing (venv, install, Dagster home) before it runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
PORT   ?= 3000
# The online endpoint runs in its own venv (requirements-serve.txt): azureml-inference-server-http pins
# pydantic/opentelemetry versions that conflict with the Dagster environment, and the scoring image needs no Dagster.
SERVE_VENV  := .venv-serve
SERVE_BIN   := $(SERVE_VENV)/bin
SERVE_STAMP := $(SERVE_VENV)/.installed
# The benchmark's peers (statsforecast, mlforecast) in their own venv too (requirements-peers.txt): statsforecast's
# scipy/pandas pins conflict with the Dagster environment's
PEERS_VENV  := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed
# make serve listens on PORT if given (make serve PORT=6000), else on 5001, the inference server's default
AZURITE := .tools/node_modules/.bin/azurite-blob
SERVE_PORT   = $(if $(filter file,$(origin PORT)),5001,$(PORT))

.PHONY: install demo test lint ui docs validate clean help serve-install serve bench-serve bench bench-registry system-deps peers-install

help:
	@echo "make demo      set up, generate demo data, run the full daily many-models cycle, print a summary"
	@echo "make test      set up, run every test"
	@echo "make lint      ruff (pyproject.toml [tool.ruff]); make test runs it first"
	@echo "make ui        open the Dagster UI (webserver + daemon) on the demo's instance"
	@echo "make validate  dagster definitions validate"
	@echo "make docs      regenerate the docs made from code (settings table, docs/warehouse.md)"
	@echo "make serve     online endpoint (azmlinfsrv + mm_assets/serving/score.py) on 127.0.0.1:5001 (PORT=...)"
	@echo "make bench-serve  online endpoint benchmark: throughput, warm/cold latency, memory under a cache limit"
	@echo "make bench     daily-cycle benchmark: 10,000 series x 4,000 days (40M rows), per-stage figures, baseline, peers"
	@echo "make bench-registry  the registries' daily reads after a year of daily cycles at 10,000 series"
	@echo "make clean     remove generated data, the Dagster instance and the venv"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

install: $(STAMP)

$(SERVE_STAMP): requirements-serve.txt pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	echo '*' > $(SERVE_VENV)/.gitignore
	$(SERVE_BIN)/python -m pip install -q --upgrade "pip>=24"
	$(SERVE_BIN)/python -m pip install -q -r requirements-serve.txt "pytest==9.2.0"
	$(SERVE_BIN)/python -m pip install -q --no-deps -e .
	touch $@

serve-install: $(SERVE_STAMP)

$(PEERS_STAMP): requirements-peers.txt pyproject.toml
	$(PYTHON) -m venv $(PEERS_VENV)
	echo '*' > $(PEERS_VENV)/.gitignore
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade "pip>=24"
	$(PEERS_VENV)/bin/python -m pip install -q -r requirements-peers.txt
	$(PEERS_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

peers-install: $(PEERS_STAMP)

# Azurite (Microsoft's storage emulator) for the `azurite` tests; 3.35.0 is the last release that runs on Node 20
$(AZURITE):
	npm install --prefix .tools --no-audit --no-fund --silent azurite@3.35.0

$(DAGSTER_HOME)/dagster.yaml: mm_assets/local_instance.yaml
	mkdir -p $(DAGSTER_HOME)
	cp mm_assets/local_instance.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/mm-assets demo

# Debian packages the tests use for real: PostgreSQL (the `postgres` tests), Chromium (the browser test, driven by
# Playwright with this executable; no browser is downloaded), Node.js + npm (Azurite). Installed when missing, with
# sudo when not root; without either, one line says what to install.
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo"; \
	  if [ -n "$$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then \
	    echo "error: the tests need Debian packages:$$missing; run as root: apt-get install$$missing" >&2; exit 1; \
	  fi; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check mm_assets mm_assets_tests bench

test: system-deps install serve-install peers-install $(AZURITE) lint
	$(BIN)/python -m pytest -m "not serving"
	$(SERVE_BIN)/python -m pytest -m serving mm_assets_tests/serving

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m mm_assets.dev_ui -w workspace.yaml -h 127.0.0.1 -p $(PORT)

docs: install  # docs generated from code: the settings table and the warehouse tables
	$(BIN)/python -m mm_assets.settings_reference docs/configuration.md
	$(BIN)/python -m mm_assets.warehouse.reference > docs/warehouse.md

validate: install
	$(BIN)/dagster definitions validate -w workspace.yaml

# azmlinfsrv's own entry point (amlserver.run) with the scoring script, bound to 127.0.0.1 instead of its
# hard-coded 0.0.0.0; settings in force: ./mm_assets.yaml or MM_ASSETS_SETTINGS, MM_ASSETS__*, MM_ASSETS_SERVING_*
serve: serve-install
	$(SERVE_BIN)/python -m mm_assets.serving.loopback --entry_script mm_assets/serving/score.py --port $(SERVE_PORT)

# BENCH_SERVE_ARGS="--model lightgbm" for the default model (one global model per store)
bench-serve: serve-install
	$(SERVE_BIN)/python bench/serve_bench.py $(BENCH_SERVE_ARGS)

# the daily cycle at 10,000 series x 4,000 days (40M rows); BENCH_ARGS="--series 2000 --days 1000" for a smaller run
bench: install peers-install
	$(BIN)/mm-assets bench --series 10000 --days 4000 --model linear $(BENCH_ARGS)

# the registries' daily reads after a year of daily cycles (their logs grow by every series every day)
bench-registry: install
	$(BIN)/python bench/registry_growth.py $(BENCH_ARGS)

clean:
	rm -rf data .dagster_home $(VENV) $(SERVE_VENV) $(PEERS_VENV) .tools
