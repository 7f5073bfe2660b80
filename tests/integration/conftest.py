"""One real server for the session: the bundled model, a temp home, a random key."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import pytest_asyncio  # noqa: F401  (imported so a missing plugin fails loudly)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.checkpoints import bert
from tests.integration.server import RunningServer, start_server

MODEL_ID = "gemma3-270m"
POSTGRES = "postgresql+asyncpg://127.0.0.1:5432"
# The bundled model's end-of-generation tokens (<eos>, <end_of_turn>, </s>): a request that
# bans them runs until max_tokens, for tests that need work still running.
NO_END = {"1": -100, "106": -100, "212": -100}


@pytest.fixture(scope="session")
def api_key() -> str:
    return "sk-test-" + secrets.token_urlsafe(16)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, api_key: str) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("home")
    running = start_server(home, env={"PRIVSERVE_API_KEY": api_key})
    yield running
    running.stop()
    # Kept for reading after a failed run: the server's whole log.
    (home / "server.log").write_text("".join(running.output))


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT cross-encoder, saved as a downloaded reranker directory."""
    return bert.cross_encoder(tmp_path_factory.mktemp("checkpoints") / "tiny-reranker")


@pytest.fixture(scope="session")
def configured_server(
    tmp_path_factory: pytest.TempPathFactory, api_key: str, cross_encoder_dir: Path
) -> Iterator[RunningServer]:
    """A second server with the options the default one leaves off: a cross-encoder given
    by flag, inputs cut at the model's limit, vectors that may be shortened, bfloat16
    embedding weights, max_tokens fitted to the context, and no access log."""
    home = tmp_path_factory.mktemp("configured")
    running = start_server(
        home,
        args=["--rerank-model", str(cross_encoder_dir)],
        env={
            "PRIVSERVE_API_KEY": api_key,
            "PRIVSERVE_EMBEDDING__TRUNCATE": "true",
            "PRIVSERVE_EMBEDDING__SHORTENABLE": "true",
            "PRIVSERVE_EMBEDDING__DTYPE": "bfloat16",
            "PRIVSERVE_SERVER__FIT_MAX_TOKENS": "true",
            "PRIVSERVE_SERVER__ACCESS_LOG": "false",
        },
    )
    yield running
    running.stop()
    (home / "server.log").write_text("".join(running.output))


@pytest.fixture(scope="session")
def model_path(server: RunningServer) -> Path:
    """The bundled GGUF as `serve` assembled it into the session's PRIVSERVE_HOME."""
    [path] = (server.home / "models").glob("*.gguf")
    return path


@pytest.fixture
def client(server: RunningServer, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0) as c:
        yield c


@pytest_asyncio.fixture
async def async_client(server: RunningServer, api_key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key=api_key, max_retries=0, timeout=120
    ) as c:
        yield c


@pytest.fixture
def http(server: RunningServer, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.root_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=120
    ) as c:
        yield c


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A database of its own on the machine's PostgreSQL, dropped afterwards."""
    name = "privserve_" + secrets.token_hex(6)
    admin = create_async_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"{POSTGRES}/{name}"
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
