#!/usr/bin/env bash
# Installs infinity-emb, the embedding server bench/embed.py compares against, in a venv of its
# own: it pins its own numpy, sentence-transformers and uvicorn. Cached outside the repository.
# torch is pinned to the CPU build privserve uses (unpinned, pip would take a CUDA build), and
# click below 8.2, which its typer 0.12 needs to start.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VERSION=${INFINITY_VERSION:-0.0.77}
CACHE=${PRIVSERVE_BENCH_CACHE:-$HOME/.cache/privserve-bench}
VENV="$CACHE/infinity-$VERSION"
if [ ! -x "$VENV/bin/infinity_emb" ]; then
    mkdir -p "$CACHE"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet torch==2.13.0 "infinity-emb[server,torch]==$VERSION" "click<8.2"
fi
echo "$VENV/bin/infinity_emb"
