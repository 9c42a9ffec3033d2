# Two commands matter: `make run` and `make test`. Everything else sets itself up the same way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ../shared/data

.PHONY: setup run test simulate sweep quality decision-bench ope bench clean
SETS   ?= routerbench llmrouter logpai

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

# Offline evaluation on the bundled data (../shared/data); outputs under out/.
simulate: setup
	$(BIN)/banditroute simulate --dataset $(DATA)/routerbench --cost-weight 0.1
	$(BIN)/banditroute simulate --dataset $(DATA)/logpai --cost-weight 0.1 --world outage

sweep: setup
	for set in $(SETS); do \
	  $(BIN)/banditroute sweep --dataset $(DATA)/$$set --weights 0,0.03,0.1,0.3,1,3 --seed 0 --out out/sweep/$$set || exit 1; \
	done

# Routing quality (issue 4): router vs best fixed, skyline, oracle and the single models' upper hull, per set
# and cost weight, text only and with the task label; tables and frontier plots under docs/quality/.
QUALITY_WEIGHTS ?= 0.03,0.1,0.3,1
QUALITY_SEED    ?= 0
quality: setup
	$(BIN)/banditroute quality --data $(DATA) --weights $(QUALITY_WEIGHTS) --seed $(QUALITY_SEED) --out docs/quality/text
	$(BIN)/banditroute quality --data $(DATA) --weights $(QUALITY_WEIGHTS) --seed $(QUALITY_SEED) --with-task \
	  --out docs/quality/task

# Decision path in process: featurize + predict, p50/p99 in microseconds, on real prompts.
decision-bench: setup
	for set in $(SETS); do $(BIN)/python -m simulators.latency --dataset $(DATA)/$$set || exit 1; done

ope: setup
	$(BIN)/banditroute simulate --dataset $(DATA)/llmrouter --cost-weight 0.1 --quality-delay 120 \
	  --missing-quality 0.2 --judge-noise 0.1 --save-log out/ope/banditroute.db
	$(BIN)/banditroute ope --log out/ope/banditroute.db --cost-weight 0.1
	$(BIN)/banditroute ope --log out/ope/banditroute.db --cost-weight 1 --target retrained --target greedy

clean:
	rm -rf $(VENV) var out *.egg-info
