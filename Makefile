# torchrl-functional developer entry points. Every target creates/updates .venv itself.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv test test-fast conformance demo bench bench-smoke lint docs clean

$(STAMP): pyproject.toml constraints-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints-dev.txt -e '.[all]'
	@touch $(STAMP)

venv: $(STAMP)

# The test command the README and CI use.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2 --dist loadgroup

# TorchRL's own loss tests with our classes swapped in (suite: $$TORCHRL_TESTS, default
# ../shared/torchrl_tests; absent: says so and exits 0). One line per file: passed/baseline.
conformance: $(STAMP)
	$(PY) -m conformance.run --update-readme

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow"

demo: $(STAMP)
	$(PY) examples/ppo_cartpole.py

bench: $(STAMP)
	$(PY) -m benchmarks

bench-smoke: $(STAMP)
	$(PY) -m benchmarks --smoke

# API reference from the docstrings into site/; strict: any docstring warning fails.
docs: $(STAMP)
	$(PY) -m mkdocs build --strict -f docs/mkdocs.yml

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
