"""Knowing cheaply whether any key has changed since we last looked."""

from __future__ import annotations

import itertools
import logging
import sqlite3
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

KEYS_CHANNEL = "privserve_keys"  # what the key trigger notifies on PostgreSQL


class ChangeCounter(Protocol):
    def version(self) -> int:
        """A number that differs after any change to a key, by any connection or process."""
        ...

    def close(self) -> None: ...


class SqliteChangeCounter:
    """The key epoch, read on a connection of its own.

    A trigger bumps it in every change's transaction, from this process's pool or another
    process (`privserve keys revoke`, plain SQL) alike; the ledger's writes leave it alone. One
    row of a file in the page cache: microseconds, cheap enough to ask on every request."""

    def __init__(self, path: str) -> None:
        # Autocommit, so the pragma never leaves a read transaction holding a snapshot.
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def version(self) -> int:
        row = self._connection.execute("SELECT version FROM key_epoch").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._connection.close()


class PostgresChangeCounter:
    """Counts the key trigger's notifications, on a connection of its own that LISTENs.

    A change is known within milliseconds of its commit, from this server or any other;
    asking costs nothing. While the connection is down, every call answers a new number, so
    keys are read from the database on every request until it is back."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._count = 0
        self._connection: Any = None
        self._blind = itertools.count(start=1 << 62)

    @classmethod
    async def open(cls, url: str) -> PostgresChangeCounter:
        counter = cls(url)
        await counter._listen()
        return counter

    async def _listen(self) -> None:
        connection = await asyncpg.connect(self._url)
        connection.add_termination_listener(self._lost)
        await connection.add_listener(KEYS_CHANNEL, self._changed)
        self._connection = connection
        self._count += 1  # changes may have come while nobody listened

    def _changed(self, *_: object) -> None:
        self._count += 1

    def _lost(self, *_: object) -> None:
        logger.warning("lost the key-change listener; reading keys on every request")
        self._connection = None

    def version(self) -> int:
        if self._connection is None or self._connection.is_closed():
            return next(self._blind)
        return self._count

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.remove_termination_listener(self._lost)
            connection.terminate()


async def open_change_counter(url: str) -> ChangeCounter | None:
    """A counter for a file SQLite database or PostgreSQL; None for others (they are always
    asked). A PostgreSQL listener that cannot connect is None too, with a warning."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            return await PostgresChangeCounter.open(plain)
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("no key-change listener (%s); reading keys on every request", exc)
            return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return SqliteChangeCounter(parsed.database)
