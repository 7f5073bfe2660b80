"""Limit settings as users write them, quota periods at UTC boundaries, OpenAI's reset
format, and the ledger's SQL on SQLite: reservations that cannot overrun, settlements, and
holds a dead server left."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from privserve.auth import access
from privserve.errors import InvalidRequest, StorageUnavailable
from privserve.metering.leases import QuotaLeases
from privserve.metering.rates import RateLimiter, reset_text
from privserve.metering.writer import LedgerWriter
from privserve.services.admin import since
from privserve.storage.db import open_database
from privserve.storage.usage import (
    Reservation,
    Settlement,
    UsageEntry,
    UsageFilter,
    UsageRepo,
)


def test_limits_and_quotas_parse_as_written() -> None:
    assert access.limit("60", "rpm") == 60
    assert access.limit("none", "rpm") is None
    for bad in ("-1", "0", "1.5", "many"):
        with pytest.raises(InvalidRequest) as refused:
            access.limit(bad, "tpm")
        assert refused.value.param == "tpm"
    assert access.quota("2000000/month") == access.Quota(2000000, "month")
    assert access.quota("5000") == access.Quota(5000, "total")
    for bad in ("100/fortnight", "lots", "-5/day", "0/day"):
        with pytest.raises(InvalidRequest) as refused:
            access.quota(bad)
        assert refused.value.param == "quota"
    assert access.priority(None) == "interactive" and access.priority("Batch") == "batch"
    with pytest.raises(InvalidRequest):
        access.priority("urgent")


def test_quota_periods_turn_at_utc_boundaries() -> None:
    now = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    day, month = access.Quota(1, "day"), access.Quota(1, "month")
    assert day.window(now) == "2026-12-31" and month.window(now) == "2026-12"
    assert day.resets_at(now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert month.resets_at(now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert access.Quota(1).window(now) == "total" and access.Quota(1).resets_at(now) is None
    feb = datetime(2026, 2, 10, tzinfo=UTC)
    assert month.resets_at(feb) == datetime(2026, 3, 1, tzinfo=UTC)


def test_reset_times_in_openais_format() -> None:
    assert reset_text(0.25) == "250ms"
    assert reset_text(59.2) == "1m0s"
    assert reset_text(12.0) == "12s" and reset_text(75) == "1m15s"


def test_since_takes_durations_and_dates() -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert since("7d", now) == now - timedelta(days=7)
    assert since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(InvalidRequest):
        since("fortnight")


async def test_in_process_windows_count_and_refuse() -> None:
    left = 60 - time.time() % 60
    if left < 5:  # windows are the clock's minutes: not one that is about to turn
        await asyncio.sleep(left + 0.05)
    limiter = RateLimiter()
    results = [await limiter.count_request(7, 2) for _ in range(3)]
    assert [allowed for allowed, _ in results] == [True, True, False]
    assert results[1][1].remaining == 0 and results[1][1].limit == 2
    assert await limiter.take_place(7, 1) and not await limiter.take_place(7, 1)
    await limiter.free_place(7)
    assert await limiter.take_place(7, 1)
    allowed, window = await limiter.admit_tokens(7, 10, 12)
    assert allowed and window.remaining == 0
    assert not (await limiter.admit_tokens(7, 10, 1))[0]


def entry(request_id: str, key_id: int, prompt: int, completion: int) -> UsageEntry:
    return UsageEntry(
        request_id, datetime.now(UTC), key_id, "m", "chat/completions", prompt, 0, completion,
        200, "stop", 1.0, 2.0,
    )  # fmt: skip


def hold(hold_id: str, tokens: int, limit: int = 100, expires_in_s: float = 60) -> Reservation:
    expires = datetime.now(UTC) + timedelta(seconds=expires_in_s)
    return Reservation(hold_id, 1, "total", tokens, limit, expires)


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[UsageRepo]:
    """The ledger's SQL on a fresh SQLite database."""
    async with open_database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}") as db:
        yield UsageRepo(db)


@pytest.fixture
async def writer(repo: UsageRepo) -> AsyncIterator[LedgerWriter]:
    started = LedgerWriter(repo)
    started.start()
    yield started
    await started.close()


async def test_reservations_never_pass_the_quota_and_settle_to_what_was_used(
    repo: UsageRepo,
) -> None:
    # Three requests ask for 40 each at once: two fit in 100, the third does not.
    assert await repo.apply([hold("a", 40), hold("b", 40), hold("c", 40)]) == [
        True,
        True,
        False,
    ]
    assert await repo.quota_state(1, "total") == (0, 80)
    settled = Settlement(
        entry("a", 1, 10, 5), hold_id="a", key_id=1, period="total", tokens=15, released=40
    )
    await repo.apply([settled])
    assert await repo.quota_state(1, "total") == (15, 40)
    # Given back twice: a hold cannot give up more than it holds.
    again = Settlement(None, hold_id="a", key_id=1, period="total", released=40)
    await repo.apply([again])
    assert await repo.quota_state(1, "total") == (15, 40)
    # A lease shared by two requests: each gives back its part.
    parts = [
        Settlement(None, hold_id="b", key_id=1, period="total", tokens=t, released=20)
        for t in (7, 9)
    ]
    await repo.apply(parts)
    assert await repo.quota_state(1, "total") == (31, 0)
    [sums] = await repo.sums(UsageFilter(key_id=1), "key")
    assert (sums.requests, sums.prompt_tokens, sums.completion_tokens) == (1, 10, 5)


async def test_holds_a_dead_server_left_are_freed_after_they_expire(repo: UsageRepo) -> None:
    await repo.apply([hold("dead", 70, expires_in_s=-1), hold("alive", 20)])
    assert await repo.quota_state(1, "total") == (0, 90)
    assert await repo.sweep(datetime.now(UTC)) == 1
    assert await repo.quota_state(1, "total") == (0, 20)
    # The request outlived its hold after all: it is charged, nothing is given back twice.
    late = Settlement(None, hold_id="dead", key_id=1, period="total", tokens=30, released=70)
    await repo.apply([late])
    assert await repo.quota_state(1, "total") == (30, 20)


async def test_concurrent_changes_share_commits_and_a_bad_one_fails_alone(
    repo: UsageRepo, writer: LedgerWriter
) -> None:
    rows = [Settlement(entry(f"r{i}", 2, 3, 4)) for i in range(200)]
    await asyncio.gather(*(writer.apply(row) for row in rows))
    assert writer.stats.changes == 200 and writer.stats.commits < 200
    [sums] = await repo.sums(UsageFilter(key_id=2), "key")
    assert sums.requests == 200 and sums.total_tokens == 1400
    # Two holds under one id: the second cannot be written; the rest of its batch is.
    results = await asyncio.gather(
        writer.apply(hold("same", 1)),
        writer.apply(hold("same", 1)),
        writer.apply(Settlement(entry("ok", 3, 1, 1))),
        return_exceptions=True,
    )
    assert results[0] is True and isinstance(results[1], Exception)
    assert results[2] is True
    assert (await repo.sums(UsageFilter(key_id=3), "key"))[0].requests == 1


async def test_an_unreachable_redis_is_a_clear_503_not_a_crash() -> None:
    limiter = RateLimiter("redis://127.0.0.1:1")  # nothing listens there
    with pytest.raises(StorageUnavailable) as refused:
        await limiter.count_request(1, 10)
    assert refused.value.status == 503 and "rate-limit storage" in refused.value.message


async def test_requests_draw_on_one_lease_and_a_tight_quota_is_never_overrun(
    repo: UsageRepo, writer: LedgerWriter
) -> None:
    leases = QuotaLeases(writer, hold_s=60)
    roomy = access.Quota(1_000_000)
    promises = await asyncio.gather(*(leases.reserve(1, roomy, 10) for _ in range(50)))
    assert len({p.hold_id for p in promises if p is not None}) == 1  # one lease
    assert await repo.quota_state(1, "total") == (0, 50_000)  # 1/20 of the quota
    await leases.close()  # the free part goes back
    assert await repo.quota_state(1, "total") == (0, 500)
    # Nearly spent: exactly what fits is granted, one request's tokens at a time.
    tight = access.Quota(100)
    fresh = QuotaLeases(writer, hold_s=60)
    got = await asyncio.gather(*(fresh.reserve(2, tight, 30) for _ in range(5)))
    assert sum(p is not None for p in got) == 3
    assert await repo.quota_state(2, "total") == (0, 90)
