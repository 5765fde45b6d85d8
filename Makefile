# mm-assets: every target sets itself up from nothing (venv, install, Dagster home) before it runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
PORT   ?= 3000

.PHONY: install demo test ui validate clean help

help:
	@echo "make demo      set up, generate demo data, run the full daily many-models cycle, print a summary"
	@echo "make test      set up, run every test"
	@echo "make ui        open the Dagster UI (webserver + daemon) on the demo's instance"
	@echo "make validate  dagster definitions validate"
	@echo "make clean     remove generated data, the Dagster instance and the venv"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/mm-assets demo

test: install
	$(BIN)/python -m pytest

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

validate: install
	$(BIN)/dagster definitions validate -w workspace.yaml

clean:
	rm -rf data .dagster_home $(VENV)
