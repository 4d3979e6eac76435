# The two commands of the README: `make site` and `make test-all`; `make smoke` and `make test` are the
# everyday loop. Everything else here is what they need: a virtualenv with the project's extras.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra pytest arguments, e.g. make test PYTEST_ARGS="--pg-version 18"
PYTEST_ARGS ?=
# One PostgreSQL cluster per xdist worker.
WORKERS ?= auto
# loadgroup keeps tests that share an expensive set-up (the built site) on one worker.
XDIST := -n $(WORKERS) --dist loadgroup

# The chaos tiers collect only the chaos suite's paths, where every chaos test lives (tests/ci/test_tiers.py
# checks it): collecting the toolkit's tests too would cost each worker a second. Paths in PYTEST_ARGS still win.
CHAOS_PATHS := tests/chaos examples docs
CHAOS_ONLY := -o "testpaths=$(CHAOS_PATHS)"

# make test collects pggit's tests only: its contract, the chaos suite, the examples and the pages. The harness's
# own tests (tests/toolkit, tests/site, tests/ci, the toolkit's doctests) run in make test-all, as PostgreSQL keeps
# make check-world apart from make check: on 2 cores they alone take longer than the everyday loop's budget.
PGGIT_PATHS := $(CHAOS_PATHS) tests/extension
PGGIT_ONLY := -o "testpaths=$(PGGIT_PATHS)"

.PHONY: test test-all site smoke full weekly metrics install clean

# constraints.txt pins every package (pip too) at the versions CI last passed with: a new release of a
# dependency changes nothing until a commit changes that file (Dependabot proposes one each week).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade -c constraints.txt pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## The everyday loop: pggit's tests (contract, chaos suite, examples, guides), all but the weekly-size soak tier.
test: $(STAMP)
	$(BIN)/pytest $(XDIST) $(PGGIT_ONLY) -m "not soak" $(PYTEST_ARGS)

## Run every test: make test's, and the harness's own (toolkit, site, workflows); all but the soak tier.
test-all: $(STAMP)
	$(BIN)/pytest $(XDIST) -m "not soak" $(PYTEST_ARGS)

## The smoke tier: chaos tests that are quick and leave the server alone, each run once (one case of a
## parametrized test, its `variant`s left out) and each property trying the `smoke` profile's few examples
## unless HYPOTHESIS_PROFILE says otherwise.
smoke: export HYPOTHESIS_PROFILE ?= smoke
smoke: $(STAMP)
	$(BIN)/pytest $(XDIST) $(CHAOS_ONLY) -m "chaos and not slow and not destructive and not soak and not variant" $(PYTEST_ARGS)

## The full chaos tier: every chaos test but the weekly-size ones.
full: $(STAMP)
	$(BIN)/pytest $(XDIST) $(CHAOS_ONLY) -m "chaos and not soak" $(PYTEST_ARGS)

## The weekly tier: large worker counts and long soaks. Their length is an option (2 minutes of sustained
## faults and 50 crash cycles unless told otherwise), e.g. make weekly PYTEST_ARGS="--soak-minutes 30";
## each soak writes its history to _build/soak.
weekly: $(STAMP)
	$(BIN)/pytest $(XDIST) $(CHAOS_ONLY) -m "soak" $(PYTEST_ARGS)

## Measure the suite and rewrite docs/metrics.md: the hand-written mutant catalog against the
## smoke and the full tier; the generated mutants (which install, and a sample of 300
## against the full tier's coverage-selected tests, with the selection checked against
## every test); the smoke tier 20 times with random seeds; the cost of describing wide
## tables; the plots.
metrics: $(STAMP)
	$(BIN)/pggit-chaos mutate --tier smoke --no-contract
	$(BIN)/pggit-chaos mutate --tier full
	$(BIN)/pggit-chaos reach --tier full
	$(BIN)/pggit-chaos mutate-fast --catalog hand --tier full
	$(BIN)/pggit-chaos mutants-generate --check-install
	$(BIN)/pggit-chaos mutate-fast --catalog generated --tier full --contract --sample 300 --agreement 12
	$(BIN)/pggit-chaos stability --runs 20
	$(BIN)/pggit-chaos bench-describe
	$(BIN)/pggit-chaos metrics

## Build the site into _build/html, after running the guides' examples.
site: $(STAMP)
	$(BIN)/pytest $(XDIST) docs $(PYTEST_ARGS)
	$(BIN)/sphinx-build -W --keep-going -n -q -b html . _build/html

clean:
	rm -rf _build .pytest_cache
