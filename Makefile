# Two commands matter: `make run` and `make test`. Everything else sets itself up the same way.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ../shared/data

.PHONY: setup browser run test demo simulate sweep ope bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/banditroute serve

# The dashboard's browser test needs Debian's chromium. Quick when it is there; when it cannot be
# installed (no root, no apt) this says so and the test reports itself skipped with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 && \
	    echo "installed chromium for the dashboard's browser test"; } || \
	  echo "could not install chromium: the dashboard's browser test will be skipped"

test: setup browser
	$(BIN)/python -m pytest -q

# Start the service on 127.0.0.1:$(DEMO_PORT), drive simulated traffic from the bundled data through
# HTTP so the dashboard fills, save a screenshot to docs/dashboard.png, keep serving until Ctrl-C.
DEMO_PORT ?= 8090
DEMO_ARGS ?=
demo: setup browser
	$(BIN)/python -m simulators.demo --data $(DATA)/routerbench --port $(DEMO_PORT) \
	  --screenshot docs/dashboard.png $(DEMO_ARGS)

clean:
	rm -rf $(VENV) var out *.egg-info
