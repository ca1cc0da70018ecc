# The two commands README promises, and the tools around them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup example test unit integration lint typecheck bench soak clean

# Strict editable installs link each module: re-install when a package folder gains or
# loses a file (the folder's mtime changes), not on every edit.
PKG_DIRS := sdk definitions definitions/events runtime_envs actors actors/store actors/functions actors/run actors/controller triggers cluster

$(STAMP): pyproject.toml $(PKG_DIRS)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

setup: $(STAMP)

example: setup
	$(BIN)/actorflow run wordcount --file examples/wordcount/workflow.yaml --wait

test: setup lint typecheck
	$(BIN)/python -m pytest

unit: setup
	$(BIN)/python -m pytest tests/unit

integration: setup
	$(BIN)/python -m pytest tests/integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy -p actorflow

bench: setup
	$(BIN)/python -m benchmarks

soak: setup
	$(BIN)/python -m benchmarks.soak --runs 1000

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
