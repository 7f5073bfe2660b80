"""Where a converted model will run, and how much memory is free there."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from privserve.engine.memory import free_ram_bytes


@dataclass(frozen=True)
class Device:
    name: str
    free_bytes: int


def serving_device() -> Device:
    """The GPU when llama.cpp is built with GPU offload and one is present, else RAM."""
    gpu = _free_gpu() if _llama_offloads() else None
    return gpu or Device("RAM", free_ram_bytes())


def _llama_offloads() -> bool:
    try:
        import llama_cpp
    except ImportError:
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


def _free_gpu() -> Device | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    done = subprocess.run(
        [smi, "--query-gpu=name,memory.free", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not done.stdout.strip():
        return None
    name, free_mib = done.stdout.strip().splitlines()[0].rsplit(",", 1)
    return Device(f"GPU ({name.strip()})", int(float(free_mib)) * 1024 * 1024)
