"""SQLAlchemy tables; never used as wire types."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ApiKeyRow(Base):
    """An API key, stored only as its SHA-256 hash plus a short prefix to recognize it by."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    owner: Mapped[str | None] = mapped_column(String(200), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # JSON lists: model ids or `*` patterns, and CIDR networks; empty: any.
    models: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    networks: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    rpm: Mapped[int | None] = mapped_column(Integer, default=None)  # requests per minute
    tpm: Mapped[int | None] = mapped_column(Integer, default=None)  # tokens per minute
    concurrency: Mapped[int | None] = mapped_column(Integer, default=None)
    quota_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    quota_period: Mapped[str | None] = mapped_column(String(8), default=None)  # total|day|month
    priority: Mapped[str] = mapped_column(
        String(12), default="interactive", server_default="interactive"
    )


# SQLite numbers its rows only through an INTEGER PRIMARY KEY; PostgreSQL's may pass 2**31.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


class UsageRow(Base):
    """One request: who, which model, how many tokens, how it ended. Never holds a secret."""

    __tablename__ = "usage_ledger"

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    key_id: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(40))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String(20))
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    duration_ms: Mapped[float] = mapped_column(Float)


class QuotaCounterRow(Base):
    """A key's tokens in one quota period (`total`, `2026-11-29`, `2026-11`): settled, and
    held by requests still running."""

    __tablename__ = "quota_counters"

    key_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger)


class QuotaHoldRow(Base):
    """Tokens a running request holds; a hold past `expires_at` (its server died) is freed."""

    __tablename__ = "quota_holds"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(16))
    tokens: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
