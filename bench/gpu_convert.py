"""The GPU half of bench/gpu_check.sh: tiny checkpoints of several families converted at 16,
8 and 4 bits, each file's next-token logits on the GPU (every layer offloaded) against the
CPU's and, at 16 bits, against torch's; then a converted model served with
`n_gpu_layers=auto`, which must put every layer on the GPU and answer.

Prints a table and writes JSON. Needs a CUDA build of llama-cpp-python (make install
LLAMA_BUILD=cuda) and the convert and dev extras.

    python bench/gpu_convert.py [--families llama qwen3 chatglm2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import llama_cpp
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.checkpoints.compare import GgufModel  # noqa: E402
from tests.checkpoints.families import FAMILIES  # noqa: E402
from tests.integration.server import start_server  # noqa: E402

BITS = (16, 8, 4)
TEXT = "The river runs north past the old mill, 河水向北流过旧磨坊。"


def privserve(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRIVSERVE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "privserve", *args], capture_output=True, text=True, env=env
    )


def compare(path: Path, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    on_gpu, on_cpu = GgufModel(path, gpu_layers=-1), GgufModel(path, gpu_layers=0)
    try:
        return on_gpu.last_logits(ids), on_cpu.last_logits(ids)
    finally:
        on_gpu.close()
        on_cpu.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["llama", "qwen3", "chatglm2"])
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu_convert.json"))
    args = parser.parse_args()
    console = Console(width=120)
    if not llama_cpp.llama_supports_gpu_offload():
        sys.exit("llama-cpp-python is built without GPU offload: make install LLAMA_BUILD=cuda")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        for family in [f for f in FAMILIES if f.name in args.families]:
            checkpoint = family.build(Path(tmp) / f"{family.name}-ckpt")
            ids = family.original_tokens(checkpoint, TEXT, False)
            reference = family.reference_logits(checkpoint, ids)
            for bits in BITS:
                name = f"gpu-{family.name}-{bits}"
                done = privserve(
                    home, "convert", str(checkpoint), "--bits", str(bits), "--name", name
                )
                if done.returncode != 0:
                    sys.exit(done.stdout + done.stderr)
                gpu, cpu = compare(home / "models" / f"{name}.gguf", ids)
                rows.append(
                    {
                        "family": family.name,
                        "bits": bits,
                        "argmax_gpu_equals_cpu": int(np.argmax(gpu)) == int(np.argmax(cpu)),
                        "max_abs_gpu_minus_cpu": float(np.abs(gpu - cpu).max()),
                        "max_abs_gpu_minus_torch": (
                            float(np.abs(gpu - reference).max()) if bits == 16 else None
                        ),
                    }
                )
        served = serve_auto(home, f"gpu-{args.families[0]}-4")
    table = Table(title="Converted on the CPU, run on the GPU (every layer offloaded)")
    for column in ("family", "bits", "argmax GPU = CPU", "max |GPU - CPU|", "max |GPU - torch|"):
        table.add_column(column, justify="right")
    for row in rows:
        torch_diff = row["max_abs_gpu_minus_torch"]
        table.add_row(
            str(row["family"]),
            str(row["bits"]),
            "yes" if row["argmax_gpu_equals_cpu"] else "NO",
            f"{row['max_abs_gpu_minus_cpu']:.4f}",
            "" if torch_diff is None else f"{torch_diff:.4f}",
        )
    console.print(table)
    console.print(f"served with n_gpu_layers=auto: {served}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"files": rows, "served": served}, indent=2) + "\n")


def serve_auto(home: Path, model: str) -> dict[str, str]:
    """The model served with the default n_gpu_layers (auto): where it ran and an answer."""
    key = "sk-gpu-check"
    running = start_server(home, env={"PRIVSERVE_API_KEY": key}, model=model)
    try:
        answer = httpx.post(
            running.base_url + "/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
            timeout=120,
        ).json()
    finally:
        running.stop()
    device = next((line for line in running.output if line.startswith("Device:")), "")
    loaded = next((line for line in running.output if " on GPU" in line), "")
    return {
        "device": device.strip(),
        "load_log": loaded.strip(),
        "finish_reason": answer["choices"][0]["finish_reason"],
    }


if __name__ == "__main__":
    main()
