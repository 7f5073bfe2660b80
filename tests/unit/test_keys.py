"""Key making, hashing and bearer parsing; the store against SQLite in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from privserve.auth.keys import (
    ENV_KEY_ID,
    ENV_KEY_NAME,
    hash_key,
    make_key,
    open_key_store,
    parse_bearer,
)
from privserve.config import Settings
from privserve.errors import InvalidRequest
from privserve.storage.db import create_engine, migrate


def test_keys_are_random_and_long() -> None:
    keys = {make_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(k.startswith("sk-ps-") and len(k) >= 48 for k in keys)


def test_hash_is_sha256_hex() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_parse_bearer() -> None:
    assert parse_bearer("Bearer abc") == "abc"
    assert parse_bearer("bearer  abc ") == "abc"
    assert parse_bearer("Basic abc") is None
    assert parse_bearer("Bearer") is None
    assert parse_bearer(None) is None


async def test_store_verifies_and_revokes_keys(tmp_path: Path) -> None:
    async with open_key_store(Settings(home=tmp_path)) as store:
        issued = await store.create("alice")
        assert (await store.verify(issued.plaintext)) is not None
        assert await store.verify(issued.plaintext + "x") is None
        assert await store.count_active() == 1
        revoked = await store.revoke("alice")
        assert revoked is not None and revoked.id == issued.row.id
        assert await store.verify(issued.plaintext) is None


async def test_the_environment_key_is_valid_exactly_while_the_environment_carries_it(
    tmp_path: Path,
) -> None:
    with_env = Settings(home=tmp_path, api_key="from-env")  # type: ignore[arg-type]
    async with open_key_store(with_env) as store:
        found = await store.verify("from-env")
        assert found is not None and found.key_id == ENV_KEY_ID
        assert await store.count_active() == 0  # never stored
    async with open_key_store(Settings(home=tmp_path)) as store:
        assert await store.verify("from-env") is None


async def test_keys_an_older_start_stored_from_the_environment_are_revoked(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path)
    db = create_engine(settings.database_url)
    try:
        await migrate(db, "0001")  # a database from before the fix
        async with db.begin() as connection:  # as start-up stored PRIVSERVE_API_KEY's key
            await connection.execute(
                text(
                    "INSERT INTO api_keys (name, prefix, key_hash, created_at) "
                    "VALUES (:name, 'sk-ps-x', :hash, CURRENT_TIMESTAMP)"
                ),
                {"name": ENV_KEY_NAME, "hash": "0" * 64},
            )
        await migrate(db)
    finally:
        await db.dispose()
    async with open_key_store(settings) as store:
        assert await store.count_active() == 0


async def test_a_remembered_key_is_forgotten_when_another_process_revokes_it(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path)
    async with open_key_store(settings) as server_store, open_key_store(settings) as cli_store:
        # The second store is another process's connection pool.
        issued = await server_store.create("bob")
        assert await server_store.verify(issued.plaintext) is not None
        assert await server_store.verify(issued.plaintext) is not None  # now remembered
        await cli_store.revoke("bob")
        assert await server_store.verify(issued.plaintext) is None
        again = await cli_store.create("carol")
        assert await server_store.verify(again.plaintext) is not None


async def test_key_names_are_unique_and_a_shared_name_revokes_nothing(tmp_path: Path) -> None:
    async with open_key_store(Settings(home=tmp_path)) as store:
        first = await store.create("fastgpt")
        with pytest.raises(InvalidRequest, match="named 'fastgpt' already"):
            await store.create("fastgpt")
        # Databases from before names were unique may hold two keys of one name.
        await store._repo.add(name="fastgpt", prefix="sk-ps-old", key_hash="0" * 64)
        with pytest.raises(InvalidRequest, match="matches 2 active keys"):
            await store.revoke("fastgpt")
        assert await store.verify(first.plaintext) is not None  # nothing was revoked
        revoked = await store.revoke(str(first.row.id))
        assert revoked is not None and await store.verify(first.plaintext) is None
        assert await store.revoke("fastgpt") is not None  # one left: its name is enough
        assert (await store.create("fastgpt")).row.name == "fastgpt"  # free again
