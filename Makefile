# Everything a fresh clone needs: a virtualenv, torch (CPU wheel) first, then the pinned project,
# then the tiny models. Each step leaves a stamp, so a second run skips what is done.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mora-installed
TINY   := .mora/models/tiny
export PREFECT_HOME ?= $(CURDIR)/.mora/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED = false

.PHONY: round test setup tiny lint bench clean

round: setup tiny
	$(VENV)/bin/mora round --config configs/tiny.yaml

test: lint tiny
	$(PY) -m pytest -q

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

tiny: $(TINY)/.complete

$(TINY)/.complete: $(STAMP) mora/models/tiny.py
	$(VENV)/bin/mora models make-tiny $(TINY) --force
	touch $@

bench: setup tiny
	$(PY) bench/round_overhead.py
	$(PY) bench/judges.py

lint: setup
	$(VENV)/bin/ruff check mora tests bench

clean:
	rm -rf mora-data .mora/prefect
