# forgekit: two commands on a fresh machine.
#   make lab    open the course in JupyterLab      (make run: execute every notebook headless)
#   make test   ruff + pytest, notebooks included  (.ci/run calls exactly this)
# Every target creates .venv and installs what it needs when missing or out of date.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT       ?= 8888
NO_BROWSER ?=
# Quiet TensorFlow for everything started from here (kernels inherit it).
export TF_CPP_MIN_LOG_LEVEL ?= 3
export TF_ENABLE_ONEDNN_OPTS ?= 0
export CUDA_VISIBLE_DEVICES ?= -1
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: lab run test lint env-files strip doctor clean help
help:
	@echo "make lab   - JupyterLab on the course (PORT=$(PORT), NO_BROWSER=1 for headless)"
	@echo "make run   - execute every notebook into build/ with workshop defaults"
	@echo "make test  - ruff, then pytest (unit tests + every notebook with CI parameters)"
	@echo "make doctor, make env-files, make strip (clear notebook outputs), make clean"

$(STAMP): pyproject.toml tools/setup_lab.py
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "error: forgekit needs Python 3.11, $(PYTHON) is " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python tools/setup_lab.py  # kernel named as in the notebooks, no news prompt
	@touch $(STAMP)

lab: $(STAMP)
	@echo "JupyterLab starts on port $(PORT); open the http://127.0.0.1:$(PORT)/lab?token=... URL it prints below."
	$(BIN)/jupyter lab --port=$(PORT) $(if $(NO_BROWSER),--no-browser,) \
		$(if $(filter 0,$(shell id -u)),--allow-root,) --ServerApp.root_dir=. notebooks/00_start_here.ipynb

run: $(STAMP)
	$(BIN)/forgekit run notebooks --out build

test: $(STAMP)
	$(BIN)/ruff check .
	bash tools/system_packages.sh
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

doctor: $(STAMP)
	$(BIN)/forgekit doctor

env-files: $(STAMP)
	$(BIN)/python tools/sync_env.py

strip: $(STAMP)
	$(BIN)/python tools/strip_notebooks.py

clean:
	rm -rf build artifacts .pytest_cache .ruff_cache
