# Two commands: `make demo` (set up + run the main job on the embedded corpus), `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO := runs/demo
# Tests and the demo default to the cores this machine has; the embedder and trainer read it.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := true

.PHONY: install assets demo test bench data-cards clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

assets: install
	$(BIN)/splitlm assets

demo: assets
	$(BIN)/python -m splitlm.demo $(DEMO)

test: assets
	$(BIN)/python -m pytest -q

bench: assets
	$(BIN)/python benchmarks/run_all.py

data-cards: assets
	$(BIN)/python -m splitlm.demo --data-cards data_cards

clean:
	rm -rf runs .pytest_cache
