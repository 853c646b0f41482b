# ccstream: `make up` runs the whole pipeline on the embedded stack; `make test` runs the test suite.
# Both install whatever is missing first (a .venv with ccstream, and redis-server from apt when root).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: up test install deps browser lint bench clean

up: install deps
	$(BIN)/ccstream up

test: install deps browser
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# the dashboard tests drive Debian's chromium through Playwright (which cannot download a browser here)
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: run 'sudo apt-get install chromium' (the dashboard tests need it)"; \
	    exit 1; \
	  fi; }

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

# redis-server and chromium (the browser test drives Debian's chromium through Playwright; Playwright cannot
# download a browser here) are system binaries: install them with apt when we can, otherwise say what to do.
deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "redis-server is missing: run 'sudo apt-get install redis-server' (or set CCSTREAM_REDIS_URL to a running Redis)"; \
	    exit 1; \
	  fi; }
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing (the browser security test needs /usr/bin/chromium): run 'sudo apt-get install chromium'"; \
	    exit 1; \
	  fi; }

clean:
	rm -rf $(VENV) build *.egg-info
