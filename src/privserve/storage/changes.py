"""Knowing cheaply whether anyone has written to the database since we last looked."""

from __future__ import annotations

import sqlite3
from typing import Protocol

from sqlalchemy.engine import make_url


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


def change_counter(url: str) -> ChangeCounter | None:
    """A counter for a file SQLite database; None for others (they are always asked)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return SqliteChangeCounter(parsed.database)
