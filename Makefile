# Two commands matter: `make run` and `make test`. Everything else sets itself up the same way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ../shared/data

.PHONY: setup run test simulate sweep ope bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/banditroute serve

test: setup
	$(BIN)/python -m pytest -q

# The load generators: Debian's wrk (closed loop, saturation) and bench/openloop.c (open loop, fixed rates).
$(BIN)/openloop: bench/openloop.c $(STAMP)
	command -v cc >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc)
	cc -O2 -Wall -o $@ bench/openloop.c

bench: setup $(BIN)/openloop
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(BIN)/banditroute bench --data $(DATA) --openloop $(BIN)/openloop --out bench.json

clean:
	rm -rf $(VENV) var out *.egg-info
