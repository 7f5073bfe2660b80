"""Checkpoint -> GGUF at a precision: the converter for 16 and 8 bits, then llama.cpp's
quantizer for 4 bits (Q4_K_M), each in a subprocess, with progress and a summary."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privserve.convert.checkpoint import Checkpoint
from privserve.convert.toolkit import Toolkit
from privserve.errors import ConversionError

Progress = Callable[[str, float | None], None]  # (stage, fraction done or None)


@dataclass(frozen=True)
class Precision:
    bits: int
    label: str  # llama.cpp's name for the file type
    bits_per_weight: float  # on disk and in memory, blocks' scales included


def precision_for(bits: int, checkpoint: Checkpoint) -> Precision:
    if bits == 16:
        # A bf16 checkpoint stays bf16: converting it to f16 can overflow large values.
        label = "bf16" if checkpoint.torch_dtype == "bfloat16" else "f16"
        return Precision(16, label, 16.0)
    if bits == 8:
        return Precision(8, "q8_0", 8.5)
    if bits == 4:
        return Precision(4, "q4_k_m", 4.85)
    raise ConversionError(f"--bits must be 16, 8, 4 or auto, not {bits}")


@dataclass(frozen=True)
class Converted:
    path: Path
    precision: Precision
    size_bytes: int
    tensor_types: dict[str, int]
    metadata: dict[str, Any]
    parameters: int
    seconds: float


def convert(
    checkpoint: Checkpoint,
    precision: Precision,
    target: Path,
    toolkit: Toolkit,
    *,
    threads: int | None = None,
    progress: Progress = lambda stage, fraction: None,
) -> Converted:
    """Writes `target`; an intermediate 16-bit file for 4 bits is removed afterwards."""
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    _check_disk(checkpoint, precision, target.parent)
    sixteen = precision_for(16, checkpoint).label
    direct = precision.label if precision.label != "q4_k_m" else sixteen
    first = target if direct == precision.label else target.with_suffix(f".{sixteen}.tmp")
    try:
        _run(
            [
                sys.executable,
                "-m",
                "privserve.convert.run_converter",
                str(toolkit.root),
                str(checkpoint.path),
                "--outtype",
                direct,
                "--outfile",
                str(first),
            ],
            stage=f"converting to {direct}",
            progress=progress,
            fraction=_tqdm_fraction,
        )
        if first != target:
            _run(
                [
                    sys.executable,
                    "-m",
                    "privserve.convert.run_quantize",
                    str(first),
                    str(target),
                    precision.label,
                    str(threads or os.cpu_count() or 1),
                ],
                stage=f"quantizing to {precision.label}",
                progress=progress,
                fraction=_tensor_fraction,
            )
    finally:
        if first != target:
            first.unlink(missing_ok=True)
    info = inspect(toolkit, target)
    return Converted(
        path=target,
        precision=precision,
        size_bytes=target.stat().st_size,
        tensor_types=info["tensor_types"],
        metadata=info["metadata"],
        parameters=int(info["parameters"]),
        seconds=time.perf_counter() - started,
    )


def inspect(toolkit: Toolkit, path: Path) -> dict[str, Any]:
    """Tensor types, scalar metadata and parameter count of a GGUF file, via gguf-py."""
    command = [sys.executable, "-m", "privserve.convert.run_inspect", str(toolkit.root), str(path)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConversionError(f"cannot read back {path}: {done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _check_disk(checkpoint: Checkpoint, precision: Precision, directory: Path) -> None:
    source_bits = 32 if checkpoint.torch_dtype == "float32" else 16
    parameters = checkpoint.weight_bytes() * 8 / source_bits
    needed = parameters * precision.bits_per_weight / 8
    if precision.label == "q4_k_m":
        needed += parameters * 2  # the 16-bit file it is quantized from
    free = shutil.disk_usage(directory).free
    if needed * 1.05 > free:
        raise ConversionError(
            f"not enough disk in {directory}: converting needs about {needed / 1e9:.1f} GB, "
            f"{free / 1e9:.1f} GB is free (choose another place with --out)"
        )


_PERCENT = re.compile(r"(\d{1,3})%\|")
_TENSOR = re.compile(r"\[\s*(\d+)/\s*(\d+)\]")


def _tqdm_fraction(line: str) -> float | None:
    found = _PERCENT.search(line)
    return int(found.group(1)) / 100 if found and "Writing" in line else None


def _tensor_fraction(line: str) -> float | None:
    found = _TENSOR.search(line)
    return int(found.group(1)) / int(found.group(2)) if found else None


def _run(
    command: list[str],
    *,
    stage: str,
    progress: Progress,
    fraction: Callable[[str], float | None],
) -> None:
    """Runs a step, feeding its progress lines to `progress`; its output's tail is the
    error message when it fails."""
    progress(stage, 0.0)
    tail: deque[str] = deque(maxlen=30)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_quiet_env()
    )
    output = process.stdout
    assert isinstance(output, io.BufferedReader)
    buffer = b""
    while chunk := output.read1(4096):  # tqdm ends updates with \r, not \n
        buffer += chunk
        *lines, buffer = re.split(rb"[\r\n]", buffer)
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            tail.append(line)
            done = fraction(line)
            if done is not None:
                progress(stage, done)
    if process.wait() != 0:
        details = "\n".join(tail)
        raise ConversionError(f"{stage} failed (exit {process.returncode}):\n{details}")
    progress(stage, 1.0)


def _quiet_env() -> dict[str, str]:
    # Never reach for a model hub; the checkpoint is local.
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
