"""Queries, one repository per table; callers see rows, not SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from privserve.storage.tables import ApiKeyRow, utcnow

_ACTIVE_WITH_PREFIX = select(
    ApiKeyRow.id,
    ApiKeyRow.key_hash,
    ApiKeyRow.is_admin,
    ApiKeyRow.models,
    ApiKeyRow.networks,
    ApiKeyRow.expires_at,
    ApiKeyRow.rpm,
    ApiKeyRow.tpm,
    ApiKeyRow.concurrency,
    ApiKeyRow.quota_tokens,
    ApiKeyRow.quota_period,
    ApiKeyRow.priority,
).where(ApiKeyRow.prefix == bindparam("prefix"), ApiKeyRow.revoked_at.is_(None))


class ActiveKey(NamedTuple):
    """What a request's key check needs: which key, the hash to compare, what it may do."""

    id: int
    key_hash: str
    is_admin: bool = False
    models: str = "[]"  # JSON list
    networks: str = "[]"  # JSON list
    expires_at: datetime | None = None
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    quota_tokens: int | None = None
    quota_period: str | None = None
    priority: str = "interactive"


class ApiKeyRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def add(self, *, name: str, prefix: str, key_hash: str, **access: Any) -> ApiKeyRow:
        """A new key row; `access` holds the optional columns (owner, expires_at, is_admin,
        models, networks, the limits and priority)."""
        async with self._sessions.begin() as session:
            row = ApiKeyRow(name=name, prefix=prefix, key_hash=key_hash, **access)
            session.add(row)
        return row

    async def active_with_prefix(self, prefix: str) -> Sequence[ActiveKey]:
        # Runs on every request: a Core query on a pooled connection, no ORM session.
        async with self._engine.connect() as connection:
            result = await connection.execute(_ACTIVE_WITH_PREFIX, {"prefix": prefix})
            return [ActiveKey(*row) for row in result]

    async def all(self) -> Sequence[ApiKeyRow]:
        async with self._sessions() as session:
            return (await session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))).all()

    async def count_active(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
            )
            return int(count or 0)

    async def get(self, key_id: int) -> ApiKeyRow | None:
        async with self._sessions() as session:
            return await session.get(ApiKeyRow, key_id)

    async def update(self, key_id: int, fields: dict[str, Any]) -> ApiKeyRow | None:
        """Sets `fields` on the active key `key_id`; None when there is none."""
        async with self._sessions.begin() as session:
            row = await session.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return None
            for name, value in fields.items():
                setattr(row, name, value)
        return row

    async def active_named(self, name: str) -> ApiKeyRow | None:
        async with self._sessions() as session:
            row: ApiKeyRow | None = await session.scalar(
                select(ApiKeyRow).where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))
            )
            return row

    async def matching(self, ident: str) -> list[ApiKeyRow]:
        """The keys, active or revoked, whose id, name or prefix is `ident`."""
        async with self._sessions() as session:
            rows = (await session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))).all()
        return [row for row in rows if ident in (str(row.id), row.name, row.prefix)]

    async def revoke(self, key_id: int) -> ApiKeyRow | None:
        """Revokes the active key `key_id` and returns it; None when there is none."""
        async with self._sessions.begin() as session:
            row = await session.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return None
            row.revoked_at = utcnow()
        return row
