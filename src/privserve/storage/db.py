"""Database engine, sessions and schema migrations (Alembic, run in-process at start-up)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url)
    if parsed.database:
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: object) -> None:
    # WAL: readers never wait for the ledger's writer. NORMAL: a commit survives the
    # process being killed (it is in the WAL file), only a power cut may lose the last ones.
    # busy_timeout: a CLI command writing a key waits its turn instead of failing.
    cursor = connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Brings the schema to `revision` (the newest by default); safe to run on every start."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


@asynccontextmanager
async def open_database(url: str) -> AsyncIterator[AsyncEngine]:
    """The database at `url`, migrated to the newest schema; disposed on the way out."""
    engine = create_engine(url)
    try:
        await migrate(engine)
        yield engine
    finally:
        await engine.dispose()


T = TypeVar("T")


class SqliteWriterThread:
    """A synchronous engine on a thread of its own, for the writes a server makes many of
    (the ledger's batches) to a SQLite file.

    The async driver hands every statement to its thread and back, a wake-up of the event
    loop each: several per batch. Here a whole transaction is one hand-off, at a third of
    the CPU. One thread, so the batches stay in order and never wait on each other."""

    def __init__(self, url: str) -> None:
        sync_url = make_url(url).set(drivername="sqlite")
        self._engine: Engine = create_sync_engine(sync_url)
        event.listen(self._engine, "connect", _sqlite_pragmas)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        """`work` run in one transaction on the writer's thread; committed if it returns."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(self._run, work))

    def _run(self, work: Callable[[Connection], T]) -> T:
        with self._engine.begin() as connection:
            return work(connection)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._engine.dispose()


@asynccontextmanager
async def open_sqlite_writer(url: str) -> AsyncIterator[SqliteWriterThread | None]:
    """A writer thread for a SQLite file database; None for anything else."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        yield None
        return
    writer = SqliteWriterThread(url)
    try:
        yield writer
    finally:
        await asyncio.to_thread(writer.close)
