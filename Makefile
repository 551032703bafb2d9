# mmbench: two commands do all set-up on a fresh machine:
#   make demo   -- installs, then runs the default suite on the embedded MovieLens-100K
#   make test   -- installs, then runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel first so that nothing pulls a multi-GB CUDA build; on a GPU machine use e.g.
#   make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
PYTEST_ARGS ?=
# pytest-xdist workers: two keep both cores busy while subprocess-heavy tests wait on their
# children; each worker runs one OpenMP thread (tests/conftest.py). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS)
# `make test` also re-runs a few committed final records of every committed board and fails
# unless they come out bit-identical: drawn among the cheap ones (recorded fit + evaluation
# under REPRO_SECONDS; a final record that reused its search's model counts that training),
# seeded by the commit so that successive commits check others (the seed is printed;
# `make reproduce REPRO_SEED=...` replays a draw). lfm2k needs its mirror.
REPRO_SAMPLE ?= 2
REPRO_SECONDS ?= 10
REPRO_SEED ?= $(shell printf '%d' 0x$$(git rev-parse --short=7 HEAD 2>/dev/null || echo 0))
# lfm2k's mirror: the MMRec folder, and the raw HetRec files its artist-name text is built from
LFM2K_MIRROR ?= $(subst $(eval) ,:,$(wildcard ../shared/data/lfm2k ../shared/data/hetrec2011-lastfm-2k-raw))
# numba (ranx) caches its compiled kernels here so that CI does not recompile every run
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba-cache
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: setup demo test test-fast reproduce fuzz bench leaderboard leaderboard-check clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=23.2"
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" || $(BIN)/python -m pip install -q torch
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" -e ".[$(EXTRAS)]" || $(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

demo: setup
	$(BIN)/mmbench datasets list
	$(BIN)/mmbench prepare ml-100k
	$(BIN)/mmbench features build-defaults -d ml-100k
	$(BIN)/mmbench models list
	$(BIN)/mmbench suite run leaderboards/ml100k-quick
	$(BIN)/mmbench leaderboard build leaderboards/ml100k-quick

# `make reproduce` runs beside pytest (its output is printed after pytest's): one process of
# mostly one thread, it would otherwise leave a core idle for a minute or two.
test: setup
	@echo "$(PYTEST) $(PYTEST_ARGS)  (and make reproduce beside it)"
	@log=$$(mktemp); $(MAKE) --no-print-directory reproduce > $$log 2>&1 & rp=$$!; \
	$(PYTEST) $(PYTEST_ARGS); t=$$?; wait $$rp; r=$$?; \
	echo "== make reproduce =="; cat $$log; rm -f $$log; \
	[ $$r -eq 0 ] || echo "make reproduce failed ($$r)"; [ $$t -eq 0 ] && [ $$r -eq 0 ]

# Committed boards: a sample of final records run again (a suite without its data is skipped).
# The boards' default features are built first (idempotent; MiniLM runs offline), so that
# content models can be drawn too.
reproduce: setup
	@$(BIN)/mmbench features build-defaults -d ml-100k > /dev/null
	@if [ -n "$(LFM2K_MIRROR)" ]; then MMBENCH_MIRROR=$(LFM2K_MIRROR) $(BIN)/mmbench features build-defaults -d lfm2k > /dev/null; fi
	@for s in leaderboards/*/suite.toml leaderboards/*/suite.v*.toml; do \
	  d=$$(dirname $$s); if grep -q '^results *=' $$s; then \
	    mirror=$${MMBENCH_MIRROR:-}; case $$d in leaderboards/lfm2k*) [ -n "$(LFM2K_MIRROR)" ] && mirror=$(LFM2K_MIRROR);; esac; \
	    MMBENCH_MIRROR=$$mirror $(BIN)/mmbench leaderboard reproduce $$s --sample $(REPRO_SAMPLE) \
	      --max-seconds $(REPRO_SECONDS) --seed $(REPRO_SEED) || exit 1; fi; \
	done

test-fast: setup
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

# Property-based fuzzing with a large random budget (make test runs the same properties with a
# small, fixed one); prints how many examples each property ran and what it found.
FUZZ_EXAMPLES ?= 300
fuzz: setup
	MMBENCH_FUZZ=1 MMBENCH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/fuzz \
	  --hypothesis-show-statistics $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" -e ".[bench]" || $(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Rebuild every suite's v<N>/ from its records (suites without records are skipped).
leaderboard: setup
	@for s in leaderboards/*/suite.toml; do \
	  d=$$(dirname $$s); echo "== $$d"; $(BIN)/mmbench leaderboard build $$d --quiet --skip-empty || exit 1; \
	done

# Suites with committed records must rebuild to identical bytes; an older version is checked
# through the suite file it was built from (suite.v<N>.toml), a version not built yet is reported.
leaderboard-check: setup
	@for s in leaderboards/*/suite.toml leaderboards/*/suite.v*.toml; do \
	  d=$$(dirname $$s); if grep -q '^results *=' $$s; then \
	    mirror=$${MMBENCH_MIRROR:-}; case $$d in leaderboards/lfm2k*) [ -n "$(LFM2K_MIRROR)" ] && mirror=$(LFM2K_MIRROR);; esac; \
	    MMBENCH_MIRROR=$$mirror $(BIN)/mmbench leaderboard check $$s || exit 1; fi; \
	done

clean:
	rm -rf $(VENV) .numba-cache .pytest_cache .hypothesis results
