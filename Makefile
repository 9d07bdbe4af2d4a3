# wireline — the README's commands. Each target installs what it needs, so any of them
# works as the first command on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CERTS  := certs/ca.pem certs/server.pem certs/server.key.pem certs/other-ca.pem certs/expired.pem
PYTEST_ARGS ?=

# Debian peers the HTTP/2 and proxy tests run against; installed only when missing.
PEER_BINARIES := /usr/sbin/nginx /usr/sbin/nghttpd /usr/bin/nghttp /usr/bin/tinyproxy /usr/bin/microsocks
PEER_PACKAGES := nginx-light nghttp2-server nghttp2-client tinyproxy microsocks
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-peers certs demo test check pytest format clean fuzz stress

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --group test --config-settings editable_mode=compat -e '.[uvloop]'
	touch $(STAMP)

certs: $(CERTS)

$(CERTS): certs/make_certs.py | $(STAMP)
	$(BIN)/python certs/make_certs.py

demo: install certs
	$(BIN)/python examples/demo.py

check: install
	$(BIN)/ruff format --check sansio aio tests examples certs bench
	$(BIN)/ruff check sansio aio tests examples certs bench
	$(BIN)/mypy
	$(BIN)/mypy examples

install-peers:
	@missing=""; for binary in $(PEER_BINARIES); do \
		[ -x "$$binary" ] || missing="$$missing $$binary"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing $(PEER_PACKAGES) (missing:$$missing)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(PEER_PACKAGES); \
	fi

# Two runs, no test twice: the sans-IO core's own tests (and the fuzz corpus replay)
# under coverage, which must reach 100% of sansio by themselves; then the rest.
SANSIO_TESTS := tests/sansio tests/fuzz

pytest: install certs install-peers
	$(BIN)/python -m pytest $(SANSIO_TESTS) --cov --cov-report=term $(PYTEST_ARGS)
	$(BIN)/python -m pytest $(addprefix --ignore=,$(SANSIO_TESTS)) $(PYTEST_ARGS)

test: check pytest

# Fuzzing (tests/fuzz/README.md): each atheris harness for FUZZ_RUNS executions, seeded
# from tests/fuzz/corpus/ with the HTTP dictionary, one harness per CPU at a time (the
# HTTP harnesses run at ~500 executions/s here: 1,000,000 takes about 35 minutes each).
# `make test` replays the corpus and the regressions and runs a short smoke of each.
FUZZ_RUNS ?= 1000000
FUZZ_ARGS ?=

fuzz: install certs
	$(BIN)/python -m tests.fuzz.run --runs $(FUZZ_RUNS) $(FUZZ_ARGS)

# Chaos and soak (tests/stress/): minutes of load against real peers, outside `make test`.
stress: install certs install-peers
	$(BIN)/python -m pytest -m stress tests/stress $(PYTEST_ARGS)

format: install
	$(BIN)/ruff format sansio aio tests examples certs bench
	$(BIN)/ruff check --fix sansio aio tests examples certs bench

clean:
	rm -rf $(VENV) certs/*.pem .mypy_cache .ruff_cache .pytest_cache

# Benchmarks (bench/README.md): a separate virtualenv with the peer clients, nginx on
# loopback. Not part of `make test`. BENCH_ARGS, e.g. BENCH_ARGS="--quick".
BENCH_VENV  ?= .venv-bench
BENCH_BIN   := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ARGS  ?=

.PHONY: bench

bench: $(BENCH_STAMP) certs install-peers
	$(BENCH_BIN)/python -m bench $(BENCH_ARGS)

$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install --quiet --upgrade pip
	$(BENCH_BIN)/python -m pip install --quiet --config-settings editable_mode=compat \
		-e '.[uvloop]' -r bench/requirements.txt
	touch $(BENCH_STAMP)
