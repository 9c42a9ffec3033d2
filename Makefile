# Two commands matter: `make run` and `make test`. Everything else sets itself up the same way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ../shared/data

.PHONY: setup run judge test simulate sweep ope bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/banditroute serve

judge: setup  # the LLM-as-judge worker; JUDGE_ARGS="--config my.toml" to pass options
	$(BIN)/banditroute judge $(JUDGE_ARGS)

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) var out *.egg-info
