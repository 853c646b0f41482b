# ccstream: `make up` runs the whole pipeline on the embedded stack; `make test` runs the test suite.
# Both install whatever is missing first (a .venv with ccstream; redis-server, and chromium for the tests, from
# apt when root).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: up test install deps test-deps lint bench clean

up: install deps
	$(BIN)/ccstream up

test: install test-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check stream agents tests benchmarks
	$(BIN)/mypy

bench: install deps
	$(BIN)/python -m benchmarks all

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# System binaries, from apt when we can (one `apt-get update`, only when something is missing), otherwise
# say what to install: redis-server for the stack; chromium for the tests too (Playwright drives Debian's
# chromium: it cannot download a browser here). Each package installs a command of its own name.
define apt_install
	@missing=""; for p in $(1); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing: run 'sudo apt-get install$$missing' (or set CCSTREAM_REDIS_URL to a running Redis)"; \
	    exit 1; \
	  fi; \
	fi
endef

deps:
	$(call apt_install,redis-server)

test-deps:
	$(call apt_install,redis-server chromium)

clean:
	rm -rf $(VENV) build *.egg-info
