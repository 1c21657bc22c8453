# The two set-up commands of the README, plus a few helpers. Each target creates or refreshes
# .venv first (scripts/venv.sh: uv, CPU torch only, the tested versions of requirements/lock.txt).
PY := .venv/bin/python
TL := .venv/bin/tutorlib
# Lessons and solution notebooks run under nbval; exercises/ raise NotImplementedError by design and
# tests/notebooks/ are the grader's fixtures (some fail on purpose), so neither is collected.
NOTEBOOK_DIRS := $(wildcard notebooks solutions)
WHEELHOUSE ?= wheelhouse

.PHONY: claims venv demo test test-fast test-latest lab bench exercises lock wheelhouse gpu-check browser-check lesson-times docs docs-check clean

venv:
	@scripts/venv.sh

## The main job on the offline default: check the kit, fetch the assets, run the comparison.
demo: venv
	$(TL) doctor
	$(TL) download --all
	$(TL) compare --task sentiment --mode workshop --explain --out runs/demo --overwrite

## The whole test suite: the import contracts (pyproject.toml), package tests, then every notebook
## executed (fast mode) by nbval. A wrong-way import fails here, before any test runs.
test: venv
	.venv/bin/lint-imports --no-cache
	.venv/bin/ruff check .
	$(TL) download --all --prepare
	TUTORLIB_OFFLINE=1 TUTORLIB_MODE=fast $(PY) -m pytest -q -rs --durations=25 --nbval-lax tests $(NOTEBOOK_DIRS) --ignore=tests/notebooks

## Only the package tests that need no real model or data (seconds).
test-fast: venv
	.venv/bin/lint-imports --no-cache
	$(PY) -m pytest -q tests -m "not real and not peft"

## The package tests against the newest versions pyproject.toml allows (lock ignored), in .venv-latest.
## Add NOTEBOOKS=1 to run the notebooks too. A failure here means: fix, or narrow the range in pyproject.toml.
test-latest:
	VENV=.venv-latest LATEST=1 scripts/venv.sh
	.venv-latest/bin/tutorlib download --all --prepare
	TUTORLIB_OFFLINE=1 TUTORLIB_MODE=fast .venv-latest/bin/python -m pytest -q -rs tests --ignore=tests/notebooks \
		$(if $(NOTEBOOKS),--nbval-lax $(NOTEBOOK_DIRS))

## Regenerate requirements/lock.txt and requirements/colab.txt from the versions in .venv (after `make test`).
lock: venv
	scripts/lock.sh

## Every Python package for an offline install into one folder (a USB stick), checked by installing from it
## with the network off. WHEELHOUSE=/media/usb/wheels to choose the folder.
wheelhouse: venv
	scripts/wheelhouse.sh $(WHEELHOUSE)

## On a machine with an NVIDIA GPU: every lesson (fast mode), compare (fp32, mixed precision) and the
## bench's step costs on CUDA; a short report in gpu-check/ (see docs/teaching.md).
gpu-check: venv
	scripts/gpu_check.sh gpu-check

## JupyterLab in headless Chromium: run lesson 5, check the explorer widget renders, save a screenshot.
browser-check: venv
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -q && apt-get install -y -q --no-install-recommends chromium chromium-driver) || \
		(echo "browser-check needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"; exit 2)
	TUTORLIB_OFFLINE=1 $(PY) scripts/browser_check.py --out browser-check

## The course site in build/site/ (open build/site/index.html): the README, the lessons with the outputs of
## one stored run (docs/lesson_outputs/, written by scripts/lesson_outputs.py; nothing is executed here),
## the docs/ pages and the API. Any warning, broken internal link or missing image fails it.
docs: venv
	rm -rf build/site
	.venv/bin/sphinx-build -W --keep-going -n -q -c docs . build/site
	$(PY) scripts/docs_links.py build/site

## The built site in headless Chromium (Debian's chromium and chromium-driver): lesson 5 and the results
## page show their plots; screenshots in docs/images/.
docs-check: docs
	$(PY) scripts/docs_check.py build/site --out docs/images

## Every lesson run once, as a learner would, in one mode (MODE=fast|workshop|full, default workshop): wall
## time, peak memory and load average per lesson in runs/lesson-times/MODE.json (before a workshop).
MODE ?= workshop
lesson-times: venv
	$(PY) scripts/time_lessons.py --mode $(MODE) --out runs/lesson-times/$(MODE).json

## Verdicts of the source text's claims from the stored results (results/claims.json), rendered into every
## <!-- claims:... --> block of the README, docs/ and the lessons. Run after any stored run is redone.
claims: venv
	$(PY) -m tutorlib.experiments.claims --render

lab: venv
	.venv/bin/jupyter lab notebooks/

bench: venv
	$(PY) bench/run.py --quick

exercises: venv
	$(TL) build-exercises

clean:
	rm -rf .venv .venv-latest runs grades gpu-check browser-check .pytest_cache
