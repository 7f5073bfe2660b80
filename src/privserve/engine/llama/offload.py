"""How many of a model's layers go to the GPU: all when the weights and the KV cache of
every slot fit its free memory with headroom, else as many as fit (llama.cpp's server sizes
this with `--fit`), none without a GPU or a llama.cpp built without GPU offload."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from privserve.engine.memory import kv_cache_bytes

ALL_LAYERS = -1
# Left free on the GPU for llama.cpp's compute buffers and the CUDA context.
MIN_HEADROOM_BYTES = 768 * 1024**2
HEADROOM_SHARE = 0.05


@dataclass(frozen=True)
class Gpu:
    name: str
    free_bytes: int


@dataclass(frozen=True)
class Offload:
    gpu_layers: int  # as llama.cpp takes it: -1 every layer
    device: str  # what `serve` prints: "CPU", or the GPU and how much of the model is on it
    gpu: Gpu | None = None


def llama_offloads() -> bool:
    """Whether the installed llama.cpp was built with GPU offload (CUDA, Metal, …)."""
    try:
        import llama_cpp
    except ImportError:
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


def free_gpu() -> Gpu | None:
    """The first NVIDIA GPU and its free memory, from nvidia-smi; None without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run(
            [smi, "--query-gpu=name,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or not done.stdout.strip():
        return None
    name, free_mib = done.stdout.strip().splitlines()[0].rsplit(",", 1)
    try:
        return Gpu(name.strip(), int(float(free_mib)) * 1024 * 1024)
    except ValueError:
        return None


def plan_offload(
    requested: int | Literal["auto"],
    *,
    offloads: bool,
    gpu: Gpu | None,
    file_bytes: int,
    metadata: Mapping[str, str],
    context_cells: int,
) -> Offload:
    """`requested` a number: that many layers, as given. "auto": from the free memory."""
    if requested != "auto":
        on_gpu = offloads and requested != 0
        device = f"GPU ({gpu.name})" if on_gpu and gpu else ("GPU" if on_gpu else "CPU")
        return Offload(requested, f"{device}, n_gpu_layers={requested}", gpu)
    if not offloads:
        return Offload(0, "CPU (llama.cpp is built without GPU offload)")
    if gpu is None:
        return Offload(0, "CPU (no GPU found)")
    layers = _block_count(metadata)
    kv = kv_cache_bytes(metadata, context_cells)
    room = gpu.free_bytes - max(MIN_HEADROOM_BYTES, int(gpu.free_bytes * HEADROOM_SHARE))
    if file_bytes + kv <= room or layers == 0:
        return Offload(ALL_LAYERS, f"GPU ({gpu.name}), every layer", gpu)
    # Weights and cache split evenly over the blocks, the output layer counted as one more.
    per_layer = (file_bytes + kv) / (layers + 1)
    fitting = max(0, min(layers, int(room // per_layer)))
    if fitting == 0:
        return Offload(0, f"CPU (the model does not fit {gpu.name}'s free memory)", gpu)
    return Offload(fitting, f"GPU ({gpu.name}), {fitting} of {layers} layers", gpu)


def _block_count(metadata: Mapping[str, str]) -> int:
    arch = metadata.get("general.architecture", "")
    try:
        return int(metadata.get(f"{arch}.block_count", "0"))
    except ValueError:
        return 0
