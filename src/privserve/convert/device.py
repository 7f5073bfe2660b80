"""Where a converted model will run, and how much memory is free there."""

from __future__ import annotations

from dataclasses import dataclass

from privserve.engine.llama.offload import free_gpu, llama_offloads
from privserve.engine.memory import free_ram_bytes


@dataclass(frozen=True)
class Device:
    name: str
    free_bytes: int


def serving_device() -> Device:
    """The GPU when llama.cpp is built with GPU offload and one is present, else RAM."""
    gpu = free_gpu() if llama_offloads() else None
    if gpu is None:
        return Device("RAM", free_ram_bytes())
    return Device(f"GPU ({gpu.name})", gpu.free_bytes)
