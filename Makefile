# bayesfmm developer commands. The README's two commands are `make demo` and `make test`.
#
#   make venv     create .venv (Python >= 3.12, found by tools/find-python; set PYTHON=
#                 to choose) and install bayesfmm editable with its test extras
#   make demo     run examples/stamp.py
#   make test     run the test suite; extra pytest options go in PYTEST_ARGS, e.g.
#                 make test PYTEST_ARGS="-k datasets -x"
#   make lint     ruff over the package, tests, benchmarks and examples
#   make bench    run every benchmarks/*.py
#   make docs     draw the figures and build the documentation site into build/site
#   make docs-check  make docs, then check every page in headless Chromium
#   make clean    remove build artefacts, caches and generated outputs (keeps .venv)
#   make distclean  clean, and remove .venv too

SHELL := /bin/sh
.DEFAULT_GOAL := help

export PYTHONUNBUFFERED := 1

VENV := .venv
VENV_PY := $(VENV)/bin/python
# The install stamp is named after a checksum of pyproject.toml, setup.py and the C source
# of the optional extension (bayesfmm/_vecmath.c): editing the dependencies or the
# extension reinstalls (and rebuilds it), anything else makes `make venv` instant.
PYPROJECT_SUM := $(firstword $(shell cat pyproject.toml setup.py bayesfmm/_vecmath.c 2>/dev/null | cksum))
STAMP := $(VENV)/.installed-$(PYPROJECT_SUM)
VENV_OK := "$(VENV_PY)" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null
PYTEST_ARGS ?=

.PHONY: help venv demo test test-acceptance lint bench docs docs-check clean distclean

help:
	@sed -n '1,15s/^# \{0,1\}//p' Makefile

venv:
	@if [ -f "$(STAMP)" ] && $(VENV_OK); then exit 0; fi; \
	if ! $(VENV_OK); then \
		py=$$(tools/find-python) || exit 1; \
		if [ -e "$(VENV)" ]; then echo "$(VENV) does not hold a working Python >= 3.12: recreating it"; fi; \
		echo "Creating $(VENV) with $$py ($$("$$py" -V 2>&1))"; \
		rm -rf "$(VENV)"; \
		"$$py" -m venv "$(VENV)" || exit 1; \
	fi; \
	echo "Installing bayesfmm (editable, with test extras) into $(VENV)"; \
	"$(VENV_PY)" -m pip install --disable-pip-version-check --progress-bar off -e ".[test]" || exit 1; \
	rm -f "$(VENV)"/.installed-*; \
	touch "$(STAMP)"

demo: venv
	"$(VENV_PY)" examples/stamp.py

# pytest exits 5 when it collects no tests; that is not a failure of the suite.
# Single-threaded BLAS for the tests: the fits multiply small matrices, where OpenBLAS's
# threads cost far more than they save on a 2-core machine (measured 10-1000x slower under
# load), and bf.select/bootstrap_lrt parallelise over processes instead.
test: venv
	@OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$(VENV_PY)" -m pytest $(PYTEST_ARGS) || { rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "pytest: no tests collected (exit 5), treated as success"; exit 0; fi; \
		exit $$rc; }

# The issues' acceptance runs of many seeds (marker `acceptance`), left out of `make test`.
test-acceptance: venv
	@OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$(VENV_PY)" -m pytest -m acceptance $(PYTEST_ARGS)

lint: venv
	"$(VENV_PY)" -m ruff check bayesfmm tests benchmarks examples

# The site: mkdocs-material + mkdocstrings (the `docs` extra, installed here when missing),
# strict (warnings are errors). docs/development.md says how it is checked.
docs: venv
	@"$(VENV_PY)" -c 'import mkdocs, material, mkdocstrings_handlers.python' 2>/dev/null || \
		"$(VENV_PY)" -m pip install --disable-pip-version-check --progress-bar off -e ".[docs]"
	"$(VENV_PY)" tools/docs_figures.py
	NO_MKDOCS_2_WARNING=1 "$(VENV_PY)" -m mkdocs build --strict

docs-check: docs
	"$(VENV_PY)" tools/check_site.py build/site build/docs-screenshots

bench: venv
	@found=0; for script in benchmarks/*.py; do \
		[ -f "$$script" ] || continue; found=1; \
		echo "== $$script"; \
		"$(VENV_PY)" "$$script" || exit 1; \
	done; \
	[ $$found -eq 1 ] || echo "no benchmarks/*.py to run"

clean:
	rm -rf build dist *.egg-info .pytest_cache examples/output benchmarks/results
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf "$(VENV)"
