"""Requests per minute, tokens per minute and concurrent requests per key, counted in a
`limits` storage: in this process by default, in Redis when several servers share one budget.

Windows are the clock's minutes, as OpenAI's headers describe them (a limit, what remains,
when it resets): a counter per key and minute, so one atomic increment both counts a request
and says what is left, and the reset time needs no second question to the storage (in
Redis, a round trip each). A request's prompt tokens count when it is admitted, its
completion tokens when it ends; a key over its tokens per minute is refused until the next
minute. Requests refused count too, as in any fixed window."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from limits.aio.storage import Storage
from limits.errors import StorageError
from limits.storage import storage_from_string

from privserve.errors import StorageUnavailable

# A concurrency count a dead server left behind in Redis expires after this long without
# a new request.
CONCURRENCY_EXPIRY_S = 3600
WINDOW_EXPIRY_S = 120  # a minute's counter outlives its minute, for clocks a little apart


@contextlib.asynccontextmanager
async def _reachable() -> AsyncIterator[None]:
    try:
        yield
    except StorageError as exc:
        raise StorageUnavailable(
            f"the rate-limit storage cannot be reached ({exc.storage_error}); retry shortly"
        ) from exc


def storage_uri(url: str | None) -> str:
    """`limits`' name for a storage URL: `redis://host:port` is its `async+redis://…`."""
    if not url or url == "memory://":
        return "async+memory://"
    return url if url.startswith("async+") else f"async+{url}"


@dataclass(frozen=True)
class Window:
    limit: int
    remaining: int
    reset_s: float  # until the window resets


def reset_text(seconds: float) -> str:
    """OpenAI's duration format for `x-ratelimit-reset-*`: `59s`, `1m0s`, `250ms`."""
    if seconds < 1:
        return f"{max(int(seconds * 1000), 1)}ms"
    whole = math.ceil(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


class RateLimiter:
    def __init__(self, storage_url: str | None = None, key_prefix: str = "privserve") -> None:
        options: dict[str, float | str | bool] = {}
        if storage_url:
            # Errors as limits' StorageError, which `_reachable` turns into a clear 503.
            options = {
                "implementation": "redispy",
                "key_prefix": key_prefix,
                "wrap_exceptions": True,
            }
        storage = storage_from_string(storage_uri(storage_url), **options)
        assert isinstance(storage, Storage)  # an `async+` URI gives an asyncio storage
        self._storage = storage

    async def check(self) -> None:
        """Raises when the storage cannot be reached (checked once, at start)."""
        if not await self._storage.check():
            raise ConnectionError("the rate-limit storage does not answer")

    async def count_request(self, key_id: int, rpm: int) -> tuple[bool, Window]:
        """Counts one request against the key's requests per minute: whether it was within
        the limit, and the window after it."""
        async with _reachable():
            key, reset_s = _minute("rpm", key_id)
            count = await self._storage.incr(key, WINDOW_EXPIRY_S, amount=1)
            return count <= rpm, Window(rpm, max(rpm - count, 0), reset_s)

    async def take_place(self, key_id: int, concurrency: int) -> bool:
        """Takes one of the key's places for running requests; False (none taken) when all
        are taken."""
        async with _reachable():
            key = f"concurrency/{key_id}"
            running = await self._storage.incr(key, CONCURRENCY_EXPIRY_S, amount=1)
            if running > concurrency:
                await self._storage.incr(key, CONCURRENCY_EXPIRY_S, amount=-1)
                return False
            return True

    async def free_place(self, key_id: int) -> None:
        async with _reachable():
            await self._storage.incr(f"concurrency/{key_id}", CONCURRENCY_EXPIRY_S, amount=-1)

    async def admit_tokens(self, key_id: int, tpm: int, prompt_tokens: int) -> tuple[bool, Window]:
        """Counts a prompt against the key's tokens per minute: admitted unless the window
        was spent already; and the window after it."""
        async with _reachable():
            key, reset_s = _minute("tpm", key_id)
            cost = max(prompt_tokens, 1)
            count = await self._storage.incr(key, WINDOW_EXPIRY_S, amount=cost)
            return count - cost < tpm, Window(tpm, max(tpm - count, 0), reset_s)

    async def charge_tokens(self, key_id: int, tpm: int, tokens: int) -> None:
        """Counts what a request produced; it may take the window past its limit."""
        async with _reachable():
            if tokens > 0:
                key, _ = _minute("tpm", key_id)
                await self._storage.incr(key, WINDOW_EXPIRY_S, amount=tokens)


def _minute(kind: str, key_id: int) -> tuple[str, float]:
    """This minute's counter for a key, and the seconds until the next one starts."""
    now = time.time()
    index = int(now // 60)
    return f"{kind}/{key_id}/{index}", (index + 1) * 60 - now
