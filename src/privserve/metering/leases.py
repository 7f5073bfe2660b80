"""A server's leases on its keys' quotas, so most requests reserve without a database trip.

A request's reservation must never let racing requests (on this server or others) overrun a
quota. The database grants tokens atomically; this server takes them in leases, a chunk at a
time, and hands them to its requests from memory. A lease is a hold row in the database: the
tokens it holds are either free here or promised to a running request, so the counter's
`reserved` is exactly what servers hold. A request's end gives its promised tokens back to
the database (counting what it used), not to the lease; a new lease is taken when the free
part runs out or the lease grows old, and the old one's free part goes back. When the quota
is nearly spent, a lease is exactly one request's tokens: the same as reserving one by one.
A server that dies leaves its leases behind, and the sweep gives them back after `hold_s`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from privserve.auth.access import Quota
from privserve.metering.writer import LedgerWriter
from privserve.storage.usage import Reservation, Settlement

LEASE_SHARE = 20  # a lease takes at most this part of a quota (1/20)...
LEASE_MAX_TOKENS = 100_000  # ...and at most this many tokens


@dataclass
class Lease:
    hold_id: str
    period: str
    free: int
    renew_at: float  # time.monotonic() after which a new lease is taken


@dataclass(frozen=True)
class Promise:
    """The tokens a request holds, and the lease (hold) they come from."""

    hold_id: str
    period: str
    tokens: int


class QuotaLeases:
    def __init__(self, writer: LedgerWriter, hold_s: float) -> None:
        self._writer = writer
        self._hold_s = hold_s
        self._leases: dict[tuple[int, str], Lease] = {}
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}

    async def reserve(self, key_id: int, quota: Quota, tokens: int) -> Promise | None:
        """`tokens` promised to one request; None when the quota cannot cover them."""
        period = quota.window()
        slot = (key_id, period)
        promised = self._draw(slot, tokens)  # the common case: no await, no database
        if promised is not None:
            return promised
        async with self._locks.setdefault(slot, asyncio.Lock()):
            promised = self._draw(slot, tokens)  # another request took a lease meanwhile
            if promised is not None:
                return promised
            lease = self._leases.get(slot)
            chunk = min(quota.tokens // LEASE_SHARE, LEASE_MAX_TOKENS)
            new = await self._take(key_id, quota, period, max(tokens, chunk))
            if new is None and chunk > tokens:
                new = await self._take(key_id, quota, period, tokens)  # nearly spent
            if lease is not None:
                del self._leases[slot]
                await self._give_back(key_id, lease)
            if new is None:
                return None
            new.free -= tokens
            self._leases[slot] = new
            return Promise(new.hold_id, period, tokens)

    def _draw(self, slot: tuple[int, str], tokens: int) -> Promise | None:
        """`tokens` from the slot's lease when it has them free and is not due for renewal;
        no await, so no other request interleaves."""
        lease = self._leases.get(slot)
        if lease is None or lease.free < tokens or time.monotonic() >= lease.renew_at:
            return None
        lease.free -= tokens
        return Promise(lease.hold_id, lease.period, tokens)

    async def close(self) -> None:
        """Gives every lease's free tokens back (a server that stops holds nothing)."""
        leases, self._leases = self._leases, {}
        for (key_id, _), lease in leases.items():
            await self._give_back(key_id, lease)

    async def _take(self, key_id: int, quota: Quota, period: str, tokens: int) -> Lease | None:
        hold = Reservation(
            hold_id=uuid.uuid4().hex,
            key_id=key_id,
            period=period,
            tokens=tokens,
            limit=quota.tokens,
            expires_at=datetime.now(UTC) + timedelta(seconds=self._hold_s),
        )
        if not await self._writer.apply(hold):
            return None
        # Renewed well before the sweep could take the hold for a dead server's.
        return Lease(hold.hold_id, period, tokens, time.monotonic() + self._hold_s / 2)

    async def _give_back(self, key_id: int, lease: Lease) -> None:
        if lease.free > 0:
            back = Settlement(
                None, hold_id=lease.hold_id, key_id=key_id, period=lease.period, released=lease.free
            )
            lease.free = 0
            await self._writer.apply(back)
