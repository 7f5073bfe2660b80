"""The usage ledger and token quotas, as SQL: many requests' changes applied in one
transaction, and the sums `privserve usage` reads back.

A quota's tokens live in a counter per key and period, `used` (settled) plus `reserved`
(held by running requests). A batch locks each counter it touches (PostgreSQL: `FOR
UPDATE`; SQLite: its one writer) before it reads it, so racing requests and servers can never
together pass the quota. Each reservation is also a hold row with an expiry: a server killed
mid-request leaves its holds behind, and whoever sweeps after the expiry gives the tokens
back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import Connection, Table, case, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from privserve.storage.db import SqliteWriterThread
from privserve.storage.tables import QuotaCounterRow, QuotaHoldRow, UsageRow

T = TypeVar("T")

UsageGrouping = Literal["key", "model", "day"]

# The writes use the tables themselves: a statement on a mapped class goes through the
# ORM's compile path, about twice the work per statement, and a batch makes several.
_HOLDS = cast(Table, QuotaHoldRow.__table__)
_COUNTERS = cast(Table, QuotaCounterRow.__table__)
_LEDGER = cast(Table, UsageRow.__table__)


@dataclass(frozen=True)
class UsageEntry:
    """One ledger row as the request knows it."""

    request_id: str
    created_at: datetime
    key_id: int
    model: str
    endpoint: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    status_code: int
    finish_reason: str | None
    ttft_ms: float | None
    duration_ms: float


@dataclass(frozen=True)
class Reservation:
    """Hold `tokens` of a key's quota for a request, if `limit` leaves room for them."""

    hold_id: str
    key_id: int
    period: str
    tokens: int
    limit: int
    expires_at: datetime


@dataclass(frozen=True)
class Settlement:
    """A request's end: `released` tokens come off its hold (if any) and `tokens`, what it
    really used, are counted as used; its ledger row (if any) is written; all in the same
    transaction. A hold is a server's lease on part of a quota, shared by its requests."""

    entry: UsageEntry | None
    hold_id: str | None = None
    key_id: int = 0
    period: str | None = None
    tokens: int = 0
    released: int = 0


LedgerChange = Reservation | Settlement


@dataclass(frozen=True)
class UsageFilter:
    key_id: int | None = None
    model: str | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class UsageSum:
    group: str
    requests: int
    errors: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageRepo:
    """`writer`, for a SQLite file: the thread the writes run on (reads stay on `engine`)."""

    def __init__(self, engine: AsyncEngine, writer: SqliteWriterThread | None = None) -> None:
        self._engine = engine
        self._writer = writer

    async def apply(self, changes: Sequence[LedgerChange]) -> list[bool]:
        """Applies every change in one transaction; for each, whether it was granted (a
        settlement always is). A failing transaction raises, and applies nothing."""
        return await self._transaction(functools.partial(_apply_all, changes=changes))

    async def sweep(self, now: datetime) -> int:
        """Gives back the tokens of holds that expired (their server died); how many."""
        return await self._transaction(functools.partial(_sweep, now=now))

    async def _transaction(self, work: Callable[[Connection], T]) -> T:
        if self._writer is not None:
            return await self._writer.transaction(work)
        async with self._engine.begin() as connection:
            return await connection.run_sync(work)

    async def quota_state(self, key_id: int, period: str) -> tuple[int, int]:
        """(used, reserved) tokens of a key's quota period."""
        query = select(QuotaCounterRow.used, QuotaCounterRow.reserved).where(
            QuotaCounterRow.key_id == key_id, QuotaCounterRow.period == period
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return (0, 0) if row is None else (int(row.used), int(row.reserved))

    async def sums(self, where: UsageFilter, by: UsageGrouping) -> list[UsageSum]:
        """Requests and tokens per key, model or UTC day, oldest day or largest first."""
        async with self._engine.connect() as connection:
            group = _grouping(by, connection.dialect.name)
            query = (
                select(
                    group.label("grp"),
                    func.count().label("requests"),
                    func.sum(_is_error()).label("errors"),
                    func.sum(UsageRow.prompt_tokens).label("prompt"),
                    func.sum(UsageRow.cached_tokens).label("cached"),
                    func.sum(UsageRow.completion_tokens).label("completion"),
                )
                .where(*_conditions(where))
                .group_by(group)
            )
            rows = (await connection.execute(query)).all()
        sums = [
            UsageSum(
                str(row.grp),
                int(row.requests),
                int(row.errors or 0),
                int(row.prompt or 0),
                int(row.cached or 0),
                int(row.completion or 0),
            )
            for row in rows
        ]
        if by == "day":
            return sorted(sums, key=lambda s: s.group)
        return sorted(sums, key=lambda s: (-s.total_tokens, s.group))

    async def last_used(self, key_id: int | None = None) -> dict[int, datetime]:
        """When each key (or the one key) last made a request."""
        query = select(UsageRow.key_id, func.max(UsageRow.created_at)).group_by(UsageRow.key_id)
        if key_id is not None:
            query = query.where(UsageRow.key_id == key_id)  # the (key_id, created_at) index
        async with self._engine.connect() as connection:
            return {row[0]: row[1] for row in await connection.execute(query)}


def _conditions(where: UsageFilter) -> list[ColumnElement[bool]]:
    conditions = []
    if where.key_id is not None:
        conditions.append(UsageRow.key_id == where.key_id)
    if where.model is not None:
        conditions.append(UsageRow.model == where.model)
    if where.since is not None:
        conditions.append(UsageRow.created_at >= where.since)
    return conditions


def _is_error() -> ColumnElement[Any]:
    return case((UsageRow.status_code >= 400, 1), else_=0)


def _grouping(by: UsageGrouping, dialect: str) -> Any:
    if by == "key":
        return UsageRow.key_id
    if by == "model":
        return UsageRow.model
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", UsageRow.created_at), "YYYY-MM-DD")
    return func.substr(UsageRow.created_at, 1, 10)  # SQLite keeps UTC text, ISO order


def _apply_all(connection: Connection, changes: Sequence[LedgerChange]) -> list[bool]:
    """A batch in a few statements, however many requests it holds: one to end the settled
    holds, then per quota counter (in one order, by key and period, so two servers' batches
    cannot deadlock) one lock, one update and one insert of new holds, and one insert of
    all ledger rows."""
    granted = [True] * len(changes)
    settlements = [c for c in changes if isinstance(c, Settlement)]
    releases: dict[str, int] = {}
    for settlement in settlements:
        if settlement.hold_id is not None and settlement.released:
            releases[settlement.hold_id] = releases.get(settlement.hold_id, 0) + settlement.released
    released = _release_holds(connection, releases)
    # Per counter: (tokens used, tokens no longer held), and the reservations in order.
    used: dict[tuple[int, str], list[int]] = {}
    asked: dict[tuple[int, str], list[int]] = {}
    for settlement in settlements:
        # A hold's settlements share what it really gave up (see _release_holds).
        freed = released.pop(settlement.hold_id, 0) if settlement.hold_id else 0
        if settlement.period is not None and (settlement.tokens or freed):
            totals = used.setdefault((settlement.key_id, settlement.period), [0, 0])
            totals[0] += settlement.tokens
            totals[1] += freed
    for i, change in enumerate(changes):
        if isinstance(change, Reservation):
            asked.setdefault((change.key_id, change.period), []).append(i)
    for counter in sorted(used.keys() | asked.keys()):
        spent, freed = used.get(counter, (0, 0))
        reservations = [cast(Reservation, changes[i]) for i in asked.get(counter, [])]
        grants = _update_counter(connection, counter, spent, freed, reservations)
        for i, grant in zip(asked.get(counter, []), grants, strict=True):
            granted[i] = grant
    entries = [s.entry for s in settlements if s.entry is not None]
    if entries:
        connection.execute(insert(_LEDGER), [_entry_values(e) for e in entries])
    return granted


def _release_holds(connection: Connection, releases: dict[str, int]) -> dict[str, int]:
    """Takes tokens off holds, two statements per hold (a batch has about one per key);
    how many each really gave up. A hold already swept (its server was taken for dead) is
    absent, and one cannot give up more than it holds: its tokens went back already, and
    are not given back twice."""
    released = {}
    for hold_id, tokens in sorted(releases.items()):
        where = _HOLDS.c.request_id == hold_id
        current = select(_HOLDS.c.tokens).where(where)
        if connection.dialect.name == "postgresql":
            current = current.with_for_update()  # a sweep must not end it meanwhile
        held = connection.execute(current).scalar()
        if held is None:
            continue
        given = min(tokens, int(held))
        connection.execute(update(_HOLDS).where(where).values(tokens=_HOLDS.c.tokens - given))
        released[hold_id] = given
    return released


def _update_counter(
    connection: Connection,
    counter: tuple[int, str],
    spent: int,
    freed: int,
    reservations: list[Reservation],
) -> list[bool]:
    """Settles `spent` and `freed` tokens on one counter and grants the reservations, in
    order, that fit under their limit; whether each was granted."""
    key_id, period = counter
    where = (_COUNTERS.c.key_id == key_id, _COUNTERS.c.period == period)
    if not reservations:
        # Settlements alone grant nothing, so nothing needs reading: one relative update
        # (their holds made the counter; a counter gone is made again).
        if not _add_to_counter(connection, key_id, period, spent, -freed):
            _ensure_counter(connection, key_id, period)
            _add_to_counter(connection, key_id, period, spent, -freed)
        return []
    _ensure_counter(connection, key_id, period)  # on SQLite, this write takes the lock
    current = select(_COUNTERS.c.used, _COUNTERS.c.reserved).where(*where)
    if connection.dialect.name == "postgresql":
        current = current.with_for_update()
    row = connection.execute(current).one()
    taken = int(row.used) + spent + int(row.reserved) - freed
    grants = []
    new_holds = []
    for reservation in reservations:
        fits = taken + reservation.tokens <= reservation.limit
        grants.append(fits)
        if fits:
            taken += reservation.tokens
            new_holds.append(reservation)
    reserved_now = sum(r.tokens for r in new_holds)
    if spent or freed or reserved_now:
        _add_to_counter(connection, key_id, period, spent, reserved_now - freed)
    if new_holds:
        connection.execute(
            insert(_HOLDS),
            [
                {
                    "request_id": r.hold_id,
                    "key_id": r.key_id,
                    "period": r.period,
                    "tokens": r.tokens,
                    "expires_at": r.expires_at,
                }
                for r in new_holds
            ],
        )
    return grants


def _add_to_counter(
    connection: Connection, key_id: int, period: str, used: int, reserved: int
) -> bool:
    """Adds to a counter's used and reserved tokens; whether the counter was there."""
    result = connection.execute(
        update(_COUNTERS)
        .where(_COUNTERS.c.key_id == key_id, _COUNTERS.c.period == period)
        .values(used=_COUNTERS.c.used + used, reserved=_COUNTERS.c.reserved + reserved)
    )
    return bool(result.rowcount)


def _ensure_counter(connection: Connection, key_id: int, period: str) -> None:
    values = {"key_id": key_id, "period": period, "used": 0, "reserved": 0}
    if connection.dialect.name == "postgresql":
        statement: Any = postgresql_insert(_COUNTERS).values(values)
    else:
        statement = sqlite_insert(_COUNTERS).values(values)
    connection.execute(statement.on_conflict_do_nothing())


def _sweep(connection: Connection, now: datetime) -> int:
    expired = connection.execute(
        delete(_HOLDS)
        .where(_HOLDS.c.expires_at < now)
        .returning(_HOLDS.c.key_id, _HOLDS.c.period, _HOLDS.c.tokens)
    ).all()
    counter = _COUNTERS.c
    for key_id, period, tokens in sorted(expired):
        connection.execute(
            update(_COUNTERS)
            .where(counter.key_id == key_id, counter.period == period)
            .values(reserved=counter.reserved - tokens)
        )
    return len(expired)


def _entry_values(entry: UsageEntry) -> dict[str, Any]:
    return {
        "request_id": entry.request_id,
        "created_at": entry.created_at,
        "key_id": entry.key_id,
        "model": entry.model,
        "endpoint": entry.endpoint,
        "prompt_tokens": entry.prompt_tokens,
        "cached_tokens": entry.cached_tokens,
        "completion_tokens": entry.completion_tokens,
        "status_code": entry.status_code,
        "finish_reason": entry.finish_reason,
        "ttft_ms": entry.ttft_ms,
        "duration_ms": entry.duration_ms,
    }
