"""Runs a `privserve` command as a user would, against a running server's home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.integration.server import RunningServer


def privserve_json(server: RunningServer, *args: str) -> Any:
    """The JSON a command prints on stdout for the models `server` serves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVSERVE_")}
    env.update({"PRIVSERVE_HOME": str(server.home), "HF_HUB_OFFLINE": "1"})
    done = subprocess.run(
        [sys.executable, "-m", "privserve", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)
