# Two commands matter: `make run` and `make test`. Everything else sets itself up the same way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ../shared/data

.PHONY: setup run judge test simulate sweep ope bench clean
SETS   ?= routerbench llmrouter logpai

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

# Offline evaluation on the bundled data (../shared/data); outputs under out/.
simulate: setup
	$(BIN)/banditroute simulate --dataset $(DATA)/routerbench --cost-weight 0.1
	$(BIN)/banditroute simulate --dataset $(DATA)/logpai --cost-weight 0.1 --world outage

sweep: setup
	for set in $(SETS); do \
	  $(BIN)/banditroute sweep --dataset $(DATA)/$$set --weights 0,0.03,0.1,0.3,1,3 --seed 0 --out out/sweep/$$set || exit 1; \
	done

ope: setup
	$(BIN)/banditroute simulate --dataset $(DATA)/llmrouter --cost-weight 0.1 --quality-delay 120 \
	  --missing-quality 0.2 --judge-noise 0.1 --save-log out/ope/banditroute.db
	$(BIN)/banditroute ope --log out/ope/banditroute.db --cost-weight 0.1
	$(BIN)/banditroute ope --log out/ope/banditroute.db --cost-weight 1 --target retrained --target greedy

# The load generators: Debian's wrk (closed loop, saturation) and bench/openloop.c (open loop, fixed rates).
$(BIN)/openloop: bench/openloop.c $(STAMP)
	command -v cc >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc)
	cc -O2 -Wall -o $@ bench/openloop.c

bench: setup $(BIN)/openloop
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(BIN)/banditroute bench --data $(DATA) --openloop $(BIN)/openloop --out bench.json

clean:
	rm -rf $(VENV) var out *.egg-info
