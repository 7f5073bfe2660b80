"""Starts `privserve serve` as a subprocess on a free loopback port, as a user would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# The chat model the tests are written against, named explicitly (flags override it): the
# bundled Gemma 3 270M, whose tokens and template the tests know. A test of the server's
# own default passes model=None.
TEST_CHAT_MODEL = "gemma3-270m"
BASE_URL_LINE = re.compile(r"^Base URL: (\S+)$")
KEY_LINE = re.compile(r"^API key: (sk-ps-\S+)$")


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    base_url: str  # ends in /v1
    home: Path
    printed_key: str | None
    output: list[str] = field(default_factory=list)
    drainer: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def wait_exit(self, timeout_s: float = 60) -> int:
        """The exit status of a server that was told to stop (a signal), once it has."""
        code = self.process.wait(timeout=timeout_s)
        self._release()
        return code

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._release()

    def _release(self) -> None:
        if self.drainer is not None:
            self.drainer.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_server(
    home: Path,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout_s: float = 120,
    model: str | None = TEST_CHAT_MODEL,
) -> RunningServer:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PRIVSERVE_")}
    full_env = {**inherited, "PRIVSERVE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    if model is not None:
        full_env["PRIVSERVE_MODEL"] = model
    full_env.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "privserve", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        bufsize=1,
    )
    assert process.stdout is not None
    output: list[str] = []
    base_url = key = None
    deadline = time.monotonic() + timeout_s
    # The banner (base URL, key) comes before the model loads; then /health turns ready.
    while base_url is None:
        line = process.stdout.readline()
        if not line:
            process.wait()
            process.stdout.close()
            raise RuntimeError("privserve exited early:\n" + "".join(output))
        output.append(line)
        if m := BASE_URL_LINE.match(line.strip()):
            base_url = m.group(1)
        elif m := KEY_LINE.match(line.strip()):
            key = m.group(1)
        if time.monotonic() > deadline:
            raise TimeoutError("no banner from privserve:\n" + "".join(output))
    server = RunningServer(process, base_url, home, key, output)

    # Keep draining output so the child never blocks on a full pipe.
    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if m := KEY_LINE.match(line.strip()):
                server.printed_key = server.printed_key or m.group(1)

    server.drainer = threading.Thread(target=drain, daemon=True)
    server.drainer.start()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.drainer.join(timeout=5)
            process.stdout.close()
            raise RuntimeError("privserve exited:\n" + "".join(output))
        try:
            if httpx.get(server.root_url + "/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError("privserve never became healthy:\n" + "".join(output))
