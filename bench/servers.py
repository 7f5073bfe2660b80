"""The servers bench/chat.py compares: privserve, llama-cpp-python's server, llama-server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import llama_cpp

from privserve.engine.llama.model import repacking_enabled, system_info

MODEL_ID = "gemma3-270m"
LLAMA_SERVER_ENV = "PRIVSERVE_BENCH_LLAMA_SERVER"
LLAMA_SERVER_CACHE = Path.home() / ".cache" / "privserve-bench"


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


def launch(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Starts a server with its output in `log`, for reading when a run goes wrong."""
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def start_privserve(
    home: Path,
    key: str,
    threads: int,
    ctx: int,
    parallel: int,
    log: Path,
    gpu_layers: int | None = None,
    *,
    model: str = MODEL_ID,
    settings: dict[str, str] | None = None,
    name: str = "privserve",
) -> Running:
    """`model`: a bundled model's name or a GGUF path; `settings`: PRIVSERVE_* variables."""
    port = free_port()
    env = {**os.environ, "PRIVSERVE_HOME": str(home), "PRIVSERVE_API_KEY": key, **(settings or {})}
    if gpu_layers is not None:
        env["PRIVSERVE_LLAMA__N_GPU_LAYERS"] = str(gpu_layers)
    cmd = [sys.executable, "-m", "privserve", "serve", "--port", str(port), "--model", model]
    cmd += ["--threads", str(threads), "--ctx-size", str(ctx), "--parallel", str(parallel)]
    process = launch(cmd, log, env)
    wait_ready(f"http://127.0.0.1:{port}/health", process)
    return Running(name, process, f"http://127.0.0.1:{port}")


def start_llama_cpp_python(model_path: Path, threads: int, ctx: int, log: Path) -> Running:
    port = free_port()
    # A fair setup: its defaults use one thread, a wrong chat template, logits for every
    # prompt token (slow prefill) and cut concurrent streams short.
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path)]
    cmd += ["--model_alias", MODEL_ID, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", str(ctx)]
    cmd += ["--chat_format", "gemma", "--logits_all", "False", "--interrupt_requests", "False"]
    process = launch(cmd, log)
    wait_ready(f"http://127.0.0.1:{port}/v1/models", process)
    return Running("llama_cpp.server", process, f"http://127.0.0.1:{port}")


def find_llama_server() -> Path | None:
    """llama.cpp's C++ server built by bench/build_llama_server.sh, or named by the env."""
    named = os.environ.get(LLAMA_SERVER_ENV)
    if named:
        return Path(named)
    # A CUDA build (bench/gpu_check.sh names it itself) is not the CPU benches' reference.
    built = sorted(
        path
        for path in LLAMA_SERVER_CACHE.glob("llama-server-*/bin/llama-server")
        if not path.parents[1].name.endswith("-cuda")
    )
    if built:
        return built[-1]
    on_path = shutil.which("llama-server")
    return Path(on_path) if on_path else None


def start_llama_server(
    binary: Path,
    model_path: Path,
    threads: int,
    ctx: int,
    parallel: int,
    log: Path,
    gpu_layers: int | None = None,
    *,
    model_id: str = MODEL_ID,
    chat_template: str | None = "gemma",
    extra: list[str] | None = None,
    name: str = "llama-server",
    unified: bool = False,
) -> Running:
    """`chat_template`: a built-in template's name, or None for the GGUF's own (jinja).
    `unified`: one KV cache for all slots (-kvu), else a stream of `ctx` cells per slot (its
    default, and privserve's)."""
    port = free_port()
    # Its context is split among the slots, or shared (-kvu): either way, it gets what
    # privserve gives all its slots.
    cmd = [str(binary), "-m", str(model_path), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["-a", model_id, "-np", str(parallel), "-cb", "-t", str(threads)]
    cmd += ["-kvu"] if unified else []
    cmd += ["-tb", str(threads), "-c", str(ctx * parallel), "--no-webui"]
    if chat_template is None:
        cmd += ["--jinja"]
    else:
        cmd += ["--no-jinja", "--chat-template", chat_template]
    cmd += extra or []
    if gpu_layers is not None:
        cmd += ["-ngl", str(gpu_layers if gpu_layers >= 0 else 999)]
    if not repacking_enabled(None, system_info(llama_cpp)):
        cmd += ["--no-repack"]  # as privserve decides for this machine, for a fair comparison
    process = launch(cmd, log)
    wait_ready(f"http://127.0.0.1:{port}/health", process)
    return Running(name, process, f"http://127.0.0.1:{port}")


INFINITY_ENV = "PRIVSERVE_BENCH_INFINITY"


def find_infinity() -> Path | None:
    """infinity-emb's CLI installed by bench/build_infinity.sh, or named by the env."""
    named = os.environ.get(INFINITY_ENV)
    if named:
        return Path(named)
    built = sorted(LLAMA_SERVER_CACHE.glob("infinity-*/bin/infinity_emb"))
    return built[-1] if built else None


def start_infinity(
    binary: Path,
    model_path: Path,
    model_id: str,
    key: str,
    batch: int,
    log: Path,
    dtype: str = "float32",
) -> Running:
    """infinity-emb on the same sentence-transformers directory, with a key as privserve has,
    its weights at `dtype`."""
    port = free_port()
    cmd = [str(binary), "v2", "--model-id", str(model_path), "--served-model-name", model_id]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--engine", "torch", "--device", "cpu"]
    cmd += ["--batch-size", str(batch), "--api-key", key, "--no-model-warmup"]
    cmd += ["--dtype", dtype]
    cmd += ["--no-bettertransformer"]  # it needs optimum, which the torch engine does not
    cmd += ["--log-level", "warning"]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
        "DO_NOT_TRACK": "1",
    }
    process = launch(cmd, log, env)
    wait_ready(f"http://127.0.0.1:{port}/health", process)
    return Running("infinity-emb", process, f"http://127.0.0.1:{port}")
