# Setup is part of every target: a fresh Debian machine needs only `make repro` or `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
DATASET := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PATH := $(BIN):$(PATH)

.PHONY: repro test dataset browser storage storage-stop

repro: $(VENV)/.installed dataset  ## run the whole pipeline on the real data
	dvc repro

test: $(VENV)/.installed dataset browser  ## lint, then run the test suite
	ruff check .
	python -m pytest

dataset:  ## Debian's copy of Fashion-MNIST, the pipeline's first source
	@[ -f $(DATASET)/train-images-idx3-ubyte.gz ] || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }

browser:  ## Debian's Chromium, for the test that opens the plots page with the network off
	@command -v chromium >/dev/null || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

# The venv is exactly requirements.txt, installed by uv (pinned there too; pip only bootstraps it).
UV_VERSION = $(shell sed -n 's/^uv==//p' requirements.txt)
# uv does not read pip's configuration: where pip installs from a mirror (PIP_INDEX_URL or pip.conf's
# index-url), uv uses it too. pip's extra indexes are not passed on: uv takes a package from the first
# index that has it, so a partial local mirror would hide PyPI's versions.
PIP_INDEX_URL ?= $(shell $(PYTHON) -m pip config get global.index-url 2>/dev/null)
UV = $(if $(PIP_INDEX_URL),UV_INDEX_URL=$(PIP_INDEX_URL)) $(VENV)/bin/uv
$(VENV)/.installed: requirements.txt
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	[ -x $(VENV)/bin/uv ] || $(VENV)/bin/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync -q --python $(VENV)/bin/python requirements.txt
	touch $@

# requirements.txt is the lock: pyproject.toml's dependencies and all extras, with everything they
# pull in. After editing pyproject.toml: `make lock`, then commit both (uv keeps the other pins).
.PHONY: lock
lock: $(VENV)/.installed
	$(UV) pip compile -q pyproject.toml --all-extras --python-version 3.11 \
		--custom-compile-command 'make lock' -o requirements.txt

storage: $(VENV)/.installed  ## start the local S3 store on 127.0.0.1 (.storage/), print what to export
	python scripts/storage.py start

storage-stop: $(VENV)/.installed  ## stop it; its data stays in .storage/
	python scripts/storage.py stop
