# Setup is part of every target: a fresh Debian machine needs only `make repro` or `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
DATASET := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PATH := $(BIN):$(PATH)

.PHONY: repro test dataset browser storage

repro: $(VENV)/.installed dataset  ## run the whole pipeline on the real data
	dvc repro

test: $(VENV)/.installed dataset browser  ## run the test suite
	python -m pytest

dataset:  ## Debian's copy of Fashion-MNIST, the pipeline's first source
	@[ -f $(DATASET)/train-images-idx3-ubyte.gz ] || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }

browser:  ## Debian's Chromium, for the test that opens the plots page with the network off
	@command -v chromium >/dev/null || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

$(VENV)/.installed: requirements.txt
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

storage: $(VENV)/.installed  ## run the team's S3 store on 127.0.0.1 (data in .storage/) until Ctrl-C
	python -m scripts.storage serve
