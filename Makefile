# The two set-up commands of the README, plus a few helpers. Each target creates or refreshes
# .venv first (scripts/venv.sh: uv, CPU torch only, seconds when nothing changed).
PY := .venv/bin/python
TL := .venv/bin/tutorlib
# Lessons and solution notebooks run under nbval; exercises/ raise NotImplementedError by design and
# tests/notebooks/ are the grader's fixtures (some fail on purpose), so neither is collected.
NOTEBOOK_DIRS := $(wildcard notebooks solutions)

.PHONY: venv demo test test-fast lab bench exercises clean

venv:
	@scripts/venv.sh

## The main job on the offline default: check the kit, fetch the assets, run the comparison.
demo: venv
	$(TL) doctor
	$(TL) download --all
	$(TL) compare --task sentiment --fast --out runs/demo

## The whole test suite: the import contracts (pyproject.toml), package tests, then every notebook
## executed (fast mode) by nbval. A wrong-way import fails here, before any test runs.
test: venv
	.venv/bin/lint-imports --no-cache
	$(TL) download --all --prepare
	TUTORLIB_OFFLINE=1 TUTORLIB_FAST=1 $(PY) -m pytest -q -rs --nbval-lax tests $(NOTEBOOK_DIRS) --ignore=tests/notebooks

## Only the package tests that need no real model or data (seconds).
test-fast: venv
	.venv/bin/lint-imports --no-cache
	$(PY) -m pytest -q tests -m "not real and not peft"

lab: venv
	.venv/bin/jupyter lab notebooks/

bench: venv
	$(PY) bench/run.py --quick

exercises: venv
	$(TL) build-exercises

clean:
	rm -rf .venv runs grades .pytest_cache
