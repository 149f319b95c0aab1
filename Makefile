# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run example demo test browser lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/opsreg serve --http 127.0.0.1:8080

example: $(STAMP)
	$(BIN)/opsreg example

demo: $(STAMP)
	$(BIN)/opsreg demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -q --durations=25

# The browser tests (tests/web/browser/) drive Debian's Chromium with its chromedriver; nothing
# is downloaded at run time. Installed here when missing and we are root; else say how.
# OPSREG_SKIP_BROWSER=1 skips those tests (the only way to: without Chromium they fail).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ -n "$$OPSREG_SKIP_BROWSER" ]; then echo "OPSREG_SKIP_BROWSER is set: the browser tests will be skipped"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium and chromium-driver (apt-get) for the browser tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null || \
	  echo "apt-get could not install chromium chromium-driver: the browser tests will fail"; \
	else \
	  echo "the browser tests need Chromium and its driver and will FAIL without them:"; \
	  echo "  sudo apt-get install -y chromium chromium-driver   (or OPSREG_SKIP_BROWSER=1 to skip them)"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check actors transport tests bench
	$(BIN)/ruff format --check actors transport tests bench
	$(BIN)/mypy actors transport

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	-$(BIN)/python -m pip install --quiet -e '.[peers]'  # optional: rows say "not installed"
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
