# The two commands of the README:  `make demo`  and  `make test`.
# Both create ./.venv and install everything on first use (tools/install.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install demo test lint bench clean

$(VENV)/.installed: pyproject.toml tools/install.sh
	bash tools/install.sh

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m sklearn_medprep.demo $(DEMO_ARGS)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) demo_output .pytest_cache
