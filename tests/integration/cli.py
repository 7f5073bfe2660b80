"""Runs a `privserve` command as a user would, against a running server's home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.server import TEST_CHAT_MODEL, RunningServer


def run_privserve(
    home: Path, *args: str, timeout_s: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`privserve ARGS` in its own process, with `home` as PRIVSERVE_HOME, `env` added, and
    none of this process's other PRIVSERVE_* settings; wide, so tables do not wrap."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVSERVE_")}
    full_env.update({"PRIVSERVE_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
    full_env["PRIVSERVE_MODEL"] = TEST_CHAT_MODEL
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "privserve", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=full_env,
    )


def privserve_json(server: RunningServer, *args: str) -> Any:
    """The JSON a command prints on stdout for the models `server` serves."""
    done = run_privserve(server.home, *args, timeout_s=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)
