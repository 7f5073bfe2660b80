"""Key making, hashing and bearer parsing; the store against SQLite in tmp_path."""

from __future__ import annotations

from pathlib import Path

from privserve.auth.keys import hash_key, make_key, open_key_store, parse_bearer
from privserve.config import Settings


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


async def test_store_verifies_revokes_and_adds_the_env_key(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, api_key="from-env")  # type: ignore[arg-type]
    store, db = await open_key_store(settings)
    try:
        assert await store.verify("from-env") is not None
        issued = await store.create("alice")
        assert (await store.verify(issued.plaintext)) is not None
        assert await store.verify(issued.plaintext + "x") is None
        assert await store.count_active() == 2
        assert [r.id for r in await store.revoke("alice")] == [issued.row.id]
        assert await store.verify(issued.plaintext) is None
        assert await store.ensure("from-env", "again") is False
    finally:
        store.close()
        await db.dispose()


async def test_a_remembered_key_is_forgotten_when_another_process_revokes_it(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path)
    server_store, server_db = await open_key_store(settings)
    cli_store, cli_db = await open_key_store(settings)  # another process's connection pool
    try:
        issued = await server_store.create("bob")
        assert await server_store.verify(issued.plaintext) is not None
        assert await server_store.verify(issued.plaintext) is not None  # now remembered
        await cli_store.revoke("bob")
        assert await server_store.verify(issued.plaintext) is None
        again = await cli_store.create("carol")
        assert await server_store.verify(again.plaintext) is not None
    finally:
        for store, db in ((server_store, server_db), (cli_store, cli_db)):
            store.close()
            await db.dispose()
