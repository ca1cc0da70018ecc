# The two commands README promises, and the tools around them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup postgres chromium example test unit integration lint typecheck docs bench soak clean

# Strict editable installs link each module: re-install when a package folder gains or
# loses a file (the folder's mtime changes), not on every edit.
PKG_DIRS := sdk definitions definitions/events definitions/convert runtime_envs actors actors/store actors/functions actors/run actors/controller actors/metrics triggers cluster sdk/server

$(STAMP): pyproject.toml $(PKG_DIRS)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

setup: $(STAMP)

# The PostgreSQL server binaries the SQL tests start a throwaway server with (Debian
# package `postgresql`): installed when missing in a root shell with apt-get (CI's fresh
# Debian machine); elsewhere the PostgreSQL test is skipped, saying why. Idempotent.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	else \
		echo "postgresql not installed (apt-get install postgresql): its SQL test will be skipped"; \
	fi

# The headless browser the report test opens `runs report`'s page in (Debian package
# `chromium`, driven by Playwright with executable_path): installed when missing in a root
# shell with apt-get; elsewhere that test is skipped, saying why. Idempotent.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "chromium not installed (apt-get install chromium): the report browser test will be skipped"; \
	fi

example: setup
	$(BIN)/actorflow run wordcount --file examples/wordcount/workflow.yaml --wait

test: setup postgres chromium lint typecheck docs
	$(BIN)/python -m pytest

unit: setup
	$(BIN)/python -m pytest tests/unit

integration: setup postgres chromium
	$(BIN)/python -m pytest tests/integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy -p actorflow

# The documentation site (mkdocs.yml): strict, so a broken link or anchor, a page missing
# from the nav, or a public name missing from the SDK reference fails the build.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

bench: setup
	$(BIN)/python -m benchmarks

soak: setup
	$(BIN)/python -m benchmarks.soak --runs 1000

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
