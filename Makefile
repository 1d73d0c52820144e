# Setup is part of every target: a fresh Debian machine needs only `make repro` or `make test`.
PYTHON ?= python3.11
# The machine's Python, looked up before .venv/bin goes first on PATH (below).
SYSTEM_PYTHON := $(or $(shell command -v $(PYTHON)),$(PYTHON))
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
DATASET := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PATH := $(BIN):$(PATH)

.PHONY: repro test dataset browser storage

repro: $(VENV)/.installed dataset  ## run the whole pipeline on the real data
	dvc repro

# A test worker per core and one more: the suite waits on DVC, the store and Dask a fifth of the
# time (on 2 cores: 152-208 s with 3 workers; 4 and 5 were no faster when measured against 3).
# How tests/conftest.py groups them: see there.
TEST_WORKERS ?= $(shell echo $$(($$(nproc) + 1)))

# deptry twice: the whole tree declares what it imports and uses what it declares ([tool.deptry] in
# pyproject.toml); the code a user runs (stages/, predict.py, sweep.py, search.py) imports nothing
# that only the test and dev extras declare.
test: $(VENV)/.installed dataset browser  ## lint, check the dependencies, then run the test suite
	ruff check .
	deptry .
	deptry . --extend-exclude 'tests|scripts|bench' --optional-dependencies-dev-groups test,dev \
		--ignore DEP002
	python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

dataset:  ## Debian's copy of Fashion-MNIST, the pipeline's first source
	@[ -f $(DATASET)/train-images-idx3-ubyte.gz ] || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }

browser:  ## Debian's Chromium, for the test that opens the plots page with the network off
	@command -v chromium >/dev/null || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

# The venv is exactly requirements.txt, installed by uv (pinned there too). The venv starts without
# pip (Debian's python3.11-venv not needed); the machine's pip (>= 22.3) puts uv in it, once.
UV_VERSION = $(shell sed -n 's/^uv==//p' requirements.txt)
# uv does not read pip's configuration: where pip installs from a mirror (PIP_INDEX_URL or
# pip.conf's index-url), uv uses it too. pip's extra indexes are not passed on: uv takes a package
# from the first index that has it, so a partial local mirror would hide PyPI's versions.
PIP_INDEX_URL ?= $(shell $(SYSTEM_PYTHON) -m pip config get global.index-url 2>/dev/null)
UV = $(if $(PIP_INDEX_URL),UV_INDEX_URL=$(PIP_INDEX_URL)) $(VENV)/bin/uv
# --compile-bytecode: as pip does, so that no process compiles TensorFlow's sources again at import
# (where PYTHONDONTWRITEBYTECODE is set, each one would: TensorFlow's import 11 s instead of 4 s).
$(VENV)/.installed: requirements.txt
	[ -x $(VENV)/bin/python ] || $(SYSTEM_PYTHON) -m venv --without-pip $(VENV)
	[ -x $(VENV)/bin/uv ] || \
		$(SYSTEM_PYTHON) -m pip --python $(VENV)/bin/python install -q uv==$(UV_VERSION)
	$(UV) pip sync -q --compile-bytecode --python $(VENV)/bin/python requirements.txt
	touch $@

# requirements.txt is the lock: pyproject.toml's dependencies and all extras, with everything they
# pull in. After editing pyproject.toml: `make lock`, then commit both (uv keeps the other pins).
.PHONY: lock
lock: $(VENV)/.installed
	$(UV) pip compile -q pyproject.toml --all-extras --python-version 3.11 \
		--custom-compile-command 'make lock' -o requirements.txt

storage: $(VENV)/.installed  ## run the team's S3 store on 127.0.0.1 (data in .storage/) to Ctrl-C
	python -m scripts.storage serve
