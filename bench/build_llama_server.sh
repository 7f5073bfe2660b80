#!/usr/bin/env bash
# Builds llama.cpp's C++ `llama-server` for bench/chat.py from the llama-cpp-python sdist that
# privserve pins, so the reference runs the same llama.cpp commit as privserve's runtime.
# The build is cached outside the repository (about 7 minutes on 2 cores, once).
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
VERSION=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))")
CACHE=${PRIVSERVE_BENCH_CACHE:-$HOME/.cache/privserve-bench}
SRC="$CACHE/llama_cpp_python-$VERSION"
# LLAMA_SERVER_CMAKE_ARGS=-DGGML_CUDA=on builds for NVIDIA GPUs, in a build directory of
# its own.
EXTRA_CMAKE_ARGS=${LLAMA_SERVER_CMAKE_ARGS:-}
SUFFIX=$(case "$EXTRA_CMAKE_ARGS" in *GGML_CUDA=on*) echo "-cuda" ;; esac)
BUILD="$CACHE/llama-server-$VERSION$SUFFIX"
if [ -x "$BUILD/bin/llama-server" ]; then
    echo "$BUILD/bin/llama-server"
    exit 0
fi
mkdir -p "$CACHE"
if [ ! -d "$SRC" ]; then
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
        "llama-cpp-python==$VERSION" -d "$CACHE"
    tar -xzf "$CACHE/llama_cpp_python-$VERSION.tar.gz" -C "$CACHE"
fi
cmake -S "$SRC/vendor/llama.cpp" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF $EXTRA_CMAKE_ARGS >/dev/null
cmake --build "$BUILD" --target llama-server -j "$(nproc)" >/dev/null
echo "$BUILD/bin/llama-server"
