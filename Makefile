# The two commands of the README:  `make demo`  and  `make test`.
# Both create ./.venv and install everything on first use (tools/install.sh): the
# `dev` extra, i.e. every optional feature ([all], torch included), tests and docs.
# `make test` shows pytest's progress ([ 12%] at the end of each line) and, at the
# end, what its x marks (expected failures) are.
# `make test-numpy1` runs the suite again on the oldest supported stack (numpy 1.26,
# pandas 2) with the reference neuroHarmonize installed: CI runs both (.ci/run).
VENV ?= .venv
STACK ?= latest
PY := $(VENV)/bin/python
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install demo test test-numpy1 lint bench dist clean

$(VENV)/.installed: pyproject.toml tools/install.sh
	VENV=$(VENV) STACK=$(STACK) bash tools/install.sh

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m sklearn_medprep.demo $(DEMO_ARGS)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2 -o console_output_style=progress $(PYTEST_ARGS)

# numpy 1.26 / pandas 2 / neuroHarmonize: the parity tests must run, not skip
test-numpy1:
	SKLEARN_MEDPREP_REQUIRE_REFERENCE=1 \
		$(MAKE) test VENV=.venv-numpy1 STACK=numpy1 PYTEST_ARGS="$(PYTEST_ARGS)"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

# wheel and sdist in dist/, checked as PyPI would (metadata, README rendering,
# licence file); CI runs it (.ci/run)
dist: $(VENV)/.installed
	rm -rf dist
	$(PY) -m build
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) .venv-numpy1 demo_output .pytest_cache dist build
