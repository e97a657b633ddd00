# The two commands of the README, and what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/dialbot demo

lint: $(STAMP)
	$(BIN)/ruff check dialbot tests bench
	$(BIN)/ruff format --check dialbot tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q
