# The two commands of the README, and what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup system-deps

# A CJK font for the PDF rankings, pdftotext and Chromium for the report tests
# (Debian packages; installed only when missing and when we may).
system-deps:
	@missing=""; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-noto-cjk"; \
	command -v pdftotext >/dev/null || missing="$$missing poppler-utils"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ldconfig -p | grep -q libpangoft2-1.0 || missing="$$missing libpango-1.0-0 libpangoft2-1.0-0"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "please install:$$missing (Debian packages)"; fi; \
	fi

$(STAMP): pyproject.toml
	$(MAKE) system-deps
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
