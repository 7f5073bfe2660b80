#!/usr/bin/env bash
# The GPU path, end to end, on a machine with an NVIDIA GPU and the CUDA toolkit:
#   1. privserve's runtime (llama-cpp-python) built with CUDA from the pinned source, in a
#      venv of its own (.venv-gpu), as `make serve` builds it when it finds a GPU;
#   2. llama.cpp's `llama-server` built with CUDA from the same source;
#   3. tiny checkpoints converted at 16/8/4 bits and run fully offloaded, their logits
#      against the CPU's and torch's, and a model served with n_gpu_layers=auto
#      (bench/gpu_convert.py);
#   4. the bundled model served fully offloaded by both servers, throughput at 1, 16 and
#      64 streams in one run, ratios printed (bench/chat.py).
# Results: bench/results/gpu/ (tables on stdout, JSON files).
#
#   bash bench/gpu_check.sh            # CUDA_ARCHITECTURES=90 for an H100/H200 only, etc.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
    echo "gpu_check: no NVIDIA GPU answers nvidia-smi; nothing to check here" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv
VENV=${VENV:-.venv-gpu}
OUT=${OUT:-bench/results/gpu}
ARCH=${CUDA_ARCHITECTURES:-native}
mkdir -p "$OUT"

echo "== 1. privserve's runtime with CUDA ($VENV)"
make install-dev VENV="$VENV" LLAMA_BUILD=cuda CUDA_ARCHITECTURES="$ARCH"
"$VENV/bin/python" - <<'PY'
import llama_cpp
assert llama_cpp.llama_supports_gpu_offload(), "llama-cpp-python was built without GPU offload"
print("llama-cpp-python", llama_cpp.__version__, "offloads to the GPU")
PY

echo "== 2. llama-server with CUDA, same source"
SERVER=$(LLAMA_SERVER_CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$ARCH" \
    PYTHON="$VENV/bin/python" bash bench/build_llama_server.sh)
echo "$SERVER"

echo "== 3. tiny checkpoints converted, run on the GPU"
HF_HUB_OFFLINE=1 "$VENV/bin/python" bench/gpu_convert.py --out "$OUT/gpu_convert.json"

echo "== 4. throughput, every layer on the GPU, both servers"
PRIVSERVE_BENCH_LLAMA_SERVER="$SERVER" HF_HUB_OFFLINE=1 "$VENV/bin/python" bench/chat.py \
    --levels 1 16 64 --parallel 64 --gpu-layers -1 --skip llama_cpp.server \
    --out "$OUT/chat.json" --logs "$OUT/logs"
