# Everything a fresh clone needs: a virtualenv, torch (CPU wheel) first, then the pinned project,
# then the tiny models. Each step leaves a stamp, so a second run skips what is done.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mora-installed
TINY   := .mora/models/tiny
LS_VENV := .mora/label-studio/venv
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PREFECT_HOME ?= $(CURDIR)/.mora/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED = false

.PHONY: round test test-learns setup tiny learns review-env review browser lint bench clean

round: setup tiny
	$(VENV)/bin/mora round --config configs/tiny.yaml

test: lint tiny learns review-env browser
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

$(TINY)/.complete: $(STAMP) mora/models/tiny.py mora/models/tiny_eval.py
	$(VENV)/bin/mora models make-tiny $(TINY) --force
	touch $@

# configs/tiny-learns.yaml's taught models (issue 21): minutes of teaching, one thread per model and the
# independent models side by side, one process per core (measured one after another: colour SD3 150 s, colour LTX
# ~330 s at 1500 steps, each judge family 220-240 s for 3000 steps, under load). `make test` builds them: the suite
# asks that the loop learns with them; `make test-learns` builds them and runs only their tests.
# --force: make-tiny skips a model whose folder is built, so a changed teacher would otherwise leave the old one.
learns: $(TINY)/.learns

$(TINY)/.learns: $(TINY)/.complete mora/models/learns.py mora/models/taste.py mora/models/colour.py \
                 mora/models/scenes.py
	$(VENV)/bin/mora models make-tiny $(TINY) --tastes brightness --force
	touch $@

test-learns: lint learns review-env browser
	$(PY) -m pytest -q -m learns tests/test_loop_learns.py

# Label Studio's server in its own virtualenv: it and Prefect pin conflicting packages.
review-env: $(LS_VENV)/.installed

$(LS_VENV)/.installed: constraints-label-studio.txt
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q --upgrade pip
	$(LS_VENV)/bin/python -m pip install -q -c constraints-label-studio.txt label-studio==1.23.2
	touch $@

# Reviewing a round: Label Studio installed and up on 127.0.0.1:8090, the pending sets pushed as tasks.
ROOT    ?= mora-data
DATASET ?= tiny
review: setup review-env
	$(VENV)/bin/mora review up --root $(ROOT)
	$(VENV)/bin/mora review push --root $(ROOT) --dataset $(DATASET)

# Debian's Chromium for the review UI test (Playwright drives it; nothing is downloaded by Playwright).
browser:
	@command -v chromium >/dev/null || $(SUDO) apt-get install -y -q chromium >/dev/null || \
		($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium >/dev/null)

bench: setup tiny
	$(PY) bench/round_overhead.py
	$(PY) bench/judges.py
	$(PY) bench/drift.py
	$(PY) bench/train_step.py
	$(PY) bench/eval.py
	$(PY) bench/handoff_gap.py
	$(PY) bench/products.py
	$(PY) bench/routing.py

lint: setup
	$(VENV)/bin/ruff check mora tests bench

clean:
	rm -rf mora-data .mora/prefect
