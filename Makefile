PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/mail2wo --settings settings.toml sync

lint: install
	$(BIN)/ruff check connector providers state tests benchmarks
	$(BIN)/ruff format --check connector providers state tests benchmarks

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

bench: install
	$(BIN)/python -m benchmarks

soak: install
	MAIL2WO_SOAK=1 $(BIN)/pytest -m slow

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
