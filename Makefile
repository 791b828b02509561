# tractcast: one front door. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

ifneq (,$(wildcard .env))
include .env
export
endif

help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv and install tractcast with its training and test extras

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[train,dev]"
	touch $@

up: install ## train a first model if the store is empty, then run every service and nginx on 127.0.0.1
	$(BIN)/tractcast serve

down: ## stop what `make up` started
	$(BIN)/tractcast serve --stop

test: install ## run the whole test suite (unit, services, end to end through nginx)
	$(BIN)/pytest

lint: install ## ruff over the code
	$(BIN)/ruff check src services tests bench

bench: install ## run the benchmarks and print their figures
	$(BIN)/python -m bench.startup

clean: ## remove local state (models, demo data, logs); keeps .venv
	rm -rf var
.PHONY: help install up down test lint bench clean
