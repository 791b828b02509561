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

install: $(VENV)/.installed node_modules/.installed ## create .venv and install tractcast with its training and test extras, and the browser test's npm tooling

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[train,dev]"
	touch $@

# Test tooling only (playwright-core drives Debian's chromium); the dashboard needs no package.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

up: $(VENV)/.installed ## train a first model if the store is empty, then run every service and nginx on 127.0.0.1
	$(BIN)/tractcast serve

down: ## stop what `make up` started
	$(BIN)/tractcast serve --stop

worker: $(VENV)/.installed ## a Celery worker on TRACTCAST_BROKER_URL (queues train and default), in the foreground
	$(BIN)/celery -A services.retrainer.celery_app:celery worker -Q train,default --concurrency 1 --loglevel INFO

mlflow: $(VENV)/.installed ## an MLflow tracking server on 127.0.0.1:5000 (runs and artifacts under var/mlflow)
	mkdir -p var/mlflow
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/mlflow server --host 127.0.0.1 --port 5000 --workers 1 \
		--backend-store-uri sqlite:///$(CURDIR)/var/mlflow/mlflow.db \
		--artifacts-destination $(CURDIR)/var/mlflow/artifacts --serve-artifacts

migrate: $(VENV)/.installed ## bring the metadata database (TRACTCAST_DATABASE_URL, else SQLite in the store) to the newest schema
	$(BIN)/python -m tractcast.registry.migrations upgrade

test: install ## run the whole test suite (unit, services, end to end through nginx)
	$(BIN)/pytest

lint: install ## ruff over the code, the import contracts (pyproject.toml) and mypy over src and services
	$(BIN)/ruff check src services tests bench
	$(BIN)/lint-imports --no-logo
	$(BIN)/mypy

K8S_DIR ?= var/k8s
k8s: $(VENV)/.installed ## render Kubernetes manifests into $(K8S_DIR) from compose, .env and k8s/values.yaml (+ K8S_VALUES=file)
	$(BIN)/python -m tractcast.k8s --out $(K8S_DIR) $(if $(K8S_VALUES),--values $(K8S_VALUES)) \
		$(if $(wildcard .env),--env-file .env)

bench: install ## run the benchmarks and print their figures (long: about an hour in all)
	$(BIN)/python -m bench.startup
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.backtest
	$(BIN)/python -m bench.retrain
	$(BIN)/python -m bench.geo
	$(BIN)/python -m bench.serving
	$(BIN)/python -m bench.swaps
	$(BIN)/python -m bench.replay

bench-postgis: install ## point -> tract against PostGIS (needs postgresql-15-postgis-3 on 127.0.0.1:5432)
	$(BIN)/python -m bench.postgis

compose-env: ## write .env for docker compose from .env.example with a fresh admin token (kept if it exists)
	docker/make-env

images: ## build every image docker-compose.yml names from Debian and PyPI packages (no registry needed)
	docker/build-offline-images

image-gpu: ## build the GPU worker image tractcast:gpu (TensorFlow with CUDA: downloads gigabytes)
	docker build --network host -f docker/Dockerfile --target train \
		--build-arg 'TENSORFLOW=tensorflow[and-cuda]' -t tractcast:gpu .

clean: ## remove local state (models, demo data, logs); keeps .venv
	rm -rf var
.PHONY: help install up down worker mlflow migrate test lint k8s bench bench-postgis compose-env \
	images image-gpu clean
