# hookswitch — the three commands of the README.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
# Test processes: most tests wait on phones and timers, so more than the 2 cores pay off
# (7:51 -> 3:48 for the SQLite pass). A file's tests stay in one process (module fixtures).
TEST_WORKERS ?= 4
PYTEST := $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

.PHONY: install run cluster test lint test-postgres clean phones browser edge

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,examples]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/hookswitch serve --demo $(ARGS)

# Two nodes behind Kamailio on this machine's PostgreSQL and Redis (docs/CLUSTER.md).
cluster: install edge
	$(BIN)/python -m deploy.cluster $(ARGS)

# Test phones: sipp (Debian sip-tester) and baresip, installed when missing.
phones:
	@command -v sipp >/dev/null && command -v baresip >/dev/null || { \
	  echo "installing sip-tester and baresip with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sip-tester baresip >/dev/null; }

# The cluster's SIP edge: Kamailio (deploy/kamailio/kamailio.cfg; tests/cluster runs it
# in the foreground as an ordinary process), installed when missing.
edge:
	@command -v kamailio >/dev/null || test -x /usr/sbin/kamailio || { \
	  echo "installing kamailio with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kamailio >/dev/null; }

# The tests' browser: Debian's chromium (Playwright cannot download its own here; the
# Python package comes with the dev extras).
browser:
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium with apt"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: install
	$(BIN)/ruff check src tests harness bench examples deploy
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole suite on SQLite, then the database-facing tests again on PostgreSQL.
test: install phones edge browser lint
	$(PYTEST) $(ARGS)
	HOOKSWITCH_TEST_DB=postgresql $(PYTEST) -m "not sqlite_only" $(ARGS) \
	  tests/integration tests/e2e tests/hostile

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Benchmarks (bench/, BENCHMARKS.md): hookswitch against bare sippy's b2bua_simple, on
# loopback. Both end with a SUMMARY line; results go to bench/results/ (gitignored).
.PHONY: bench bench-quick bench-cluster
bench: install phones
	@$(BIN)/python -c "import matplotlib" 2>/dev/null || $(BIN)/pip install -q matplotlib
	@test -x $(BIN)/py-spy || $(BIN)/pip install -q py-spy
	$(BIN)/python -m bench.run --profile $(ARGS)

bench-quick: install phones
	@$(BIN)/python -c "import matplotlib" 2>/dev/null || $(BIN)/pip install -q matplotlib
	$(BIN)/python -m bench.run --quick $(ARGS)

# The cluster's cost (bench/cluster.py): call setups through Kamailio with one and two
# nodes on PostgreSQL and Redis, and a command forwarded between nodes.
bench-cluster: install phones edge
	$(BIN)/python -m bench.cluster $(ARGS)
