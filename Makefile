# Two commands matter: `make run` and `make test`. Everything else sets itself up the same way.
# Before a commit: `make lint test-fast` (`make test` adds the system tests: real processes, a browser).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= data

.PHONY: setup browser postgres run judge lint test test-fast docs demo demo-screenshot simulate sweep quality decision-bench ope bench clean
SETS   ?= routerbench llmrouter logpai

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint,sim,postgres]'
	touch $(STAMP)

setup: $(STAMP)

# The LiteLLM integration's tests need the optional `litellm` extra (large: not part of `make run`'s setup).
LITELLM_STAMP := $(VENV)/.litellm
$(LITELLM_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[litellm]'
	touch $(LITELLM_STAMP)

run: setup
	$(BIN)/banditroute serve

judge: setup  # the LLM-as-judge worker; JUDGE_ARGS="--config my.toml" to pass options
	$(BIN)/banditroute judge $(JUDGE_ARGS)

# The dashboard's browser test needs Debian's chromium. Quick when it is there; when it cannot be
# installed (no root, no apt) this says so and the test reports itself skipped with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 && \
	    echo "installed chromium for the dashboard's browser test"; } || \
	  echo "could not install chromium: the dashboard's browser test will be skipped"

# The PostgreSQL tests (store/postgres.py, the fleet) start a throwaway cluster from Debian's postgresql
# package (tools/pgcluster.py); the same as for chromium when it cannot be installed.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 && \
	    echo "installed postgresql for the PostgreSQL store's tests"; } || \
	  echo "could not install postgresql: the PostgreSQL store's tests will be skipped"

test: setup browser postgres $(LITELLM_STAMP)
	$(BIN)/python -m pytest -q

# The unit and api tests only: no server processes, no browser, so no chromium to install.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not system"

# The checks that keep the layout: lint and format, the import contracts, the types ([tool.*] in pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# docs/configuration.md is generated from the config's fields (banditroute/config/sections.py).
docs: setup
	$(BIN)/banditroute config --reference > docs/configuration.md

# Start the service on 127.0.0.1:$(DEMO_PORT), drive simulated traffic from the bundled data through
# HTTP so the dashboard fills, save a screenshot to out/dashboard.png, keep serving until Ctrl-C.
# DEMO_SEED fixes the traffic order and the router's draws: the same seed prints the same figures.
DEMO_PORT ?= 8090
DEMO_SEED ?= 0
DEMO_ARGS ?=
DEMO      = $(BIN)/python -m tools.demo --data $(DATA)/routerbench --port $(DEMO_PORT) --seed $(DEMO_SEED)
demo: setup browser
	$(DEMO) $(DEMO_ARGS)

# The README's screenshot and figures: the seeded demo, docs/dashboard.png rewritten, then exit.
demo-screenshot: setup browser
	$(DEMO) --screenshot docs/dashboard.png --exit $(DEMO_ARGS)

# Offline evaluation on the bundled data (data/; DATA=dir to use another); outputs under out/.
simulate: setup
	$(BIN)/banditroute simulate --dataset $(DATA)/routerbench --cost-weight 0.1
	$(BIN)/banditroute simulate --dataset $(DATA)/logpai --cost-weight 0.1 --world outage

sweep: setup
	for set in $(SETS); do \
	  $(BIN)/banditroute sweep --dataset $(DATA)/$$set --weights 0,0.03,0.1,0.3,1,3 --seed 0 --out out/sweep/$$set || exit 1; \
	done

# Routing quality (issues 4 and 14): the cold, warm and drift protocols over seeds, router vs best fixed, best on
# evals, the frozen router, skyline, oracle, per set and cost weight, text only (with the mid-stream weight switch
# check) and with the task label; quality.csv, quality.md and frontier plots under docs/quality/ (see its README).
QUALITY_WEIGHTS   ?= 0.03,0.1,0.3,1
QUALITY_SEEDS     ?= 0,1,2
QUALITY_PROTOCOLS ?= cold,warm,drift
QUALITY_ARGS       = --data $(DATA) --weights $(QUALITY_WEIGHTS) --seeds $(QUALITY_SEEDS) --protocol $(QUALITY_PROTOCOLS)
quality: setup
	$(BIN)/banditroute quality $(QUALITY_ARGS) --switch-weight 0.1:1 --out docs/quality/text
	$(BIN)/banditroute quality $(QUALITY_ARGS) --with-task --out docs/quality/task

# Budget and quality targets (issue 17): the "Done when" on the bundled sets, 3 seeds; docs/budget-results*.md and
# docs/budget.png (see docs/budget.md). Two processes; logpai on its file's first 6,000 prompts (BUDGET_LOGPAI=
# for all 32,000: about an hour of CPU more).
BUDGET_LOGPAI ?= --limit 6000
.PHONY: budget
budget: setup
	$(BIN)/python -m tools.budget --data $(DATA) --sets routerbench,llmrouter --seeds 0,1,2 --jobs 1 \
	  --out docs/budget-results.md --plot docs/budget.png & small=$$!; \
	$(BIN)/python -m tools.budget --data $(DATA) --sets logpai --seeds 0,1,2 --jobs 1 $(BUDGET_LOGPAI) \
	  --out docs/budget-results-logpai.md --plot "" && wait $$small

# Decision path in process: featurize + predict, p50/p99 in microseconds, on real prompts.
decision-bench: setup
	for set in $(SETS); do $(BIN)/python -m tools.bench.latency --dataset $(DATA)/$$set || exit 1; done

ope: setup
	$(BIN)/banditroute simulate --dataset $(DATA)/llmrouter --cost-weight 0.1 --quality-delay 120 \
	  --missing-quality 0.2 --judge-noise 0.1 --save-log out/ope/banditroute.db
	$(BIN)/banditroute ope --log out/ope/banditroute.db --cost-weight 0.1
	$(BIN)/banditroute ope --log out/ope/banditroute.db --cost-weight 1 --target retrained --target greedy

# The load generators: Debian's wrk (closed loop, saturation) and tools/load/openloop.c (open loop, fixed rates).
$(BIN)/openloop: tools/load/openloop.c $(STAMP)
	command -v cc >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc)
	cc -O2 -Wall -o $@ tools/load/openloop.c

bench: setup $(BIN)/openloop
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m tools.bench.harness --data $(DATA) --openloop $(BIN)/openloop --out bench.json

clean:
	rm -rf $(VENV) var out *.egg-info
