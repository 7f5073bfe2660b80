"""A request's account: its key's limits checked as it starts, its tokens reserved from the
quota once its prompt is known, and its ledger row and quota settled before its response
completes.

    ticket = meter.ticket(access, "chat.completions", request_id, headers)
    await ticket.start(model)                         # requests/min, concurrency
    await ticket.admit(prompt_tokens, most_tokens)    # tokens/min, quota
    ...                                               # the answer
    await ticket.settle(usage...)                     # ledger row + quota, one commit
    await ticket.close(status)                        # always; records what settle did not
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from privserve.auth.access import KeyAccess, KeyLimits, Priority, Quota
from privserve.errors import InsufficientQuota, PrivserveError, RateLimited
from privserve.metering.leases import Promise, QuotaLeases
from privserve.metering.metrics import Metrics
from privserve.metering.rates import RateLimiter, Window, reset_text
from privserve.metering.writer import LedgerWriter
from privserve.storage.usage import Settlement, UsageEntry

logger = logging.getLogger(__name__)

CLIENT_GONE = 499  # nginx's "client closed request"


def status_of(error: BaseException) -> int:
    """The status a request that ended with `error` is recorded with."""
    if isinstance(error, PrivserveError):
        return error.status
    if isinstance(error, GeneratorExit | asyncio.CancelledError):
        return CLIENT_GONE
    return 500


@dataclass(frozen=True)
class Meter:
    """What every ticket shares: the rate limiter and the ledger's writer (None: no ledger)."""

    limiter: RateLimiter
    writer: LedgerWriter | None
    leases: QuotaLeases | None = None  # with the writer: the quotas' leases
    metrics: Metrics | None = None

    def ticket(
        self, access: KeyAccess, endpoint: str, request_id: str, headers: dict[str, str]
    ) -> Ticket:
        """`headers` receives the `x-ratelimit-*` headers as the limits are checked."""
        return Ticket(self, access, endpoint, request_id, headers)


def _over_window(what: str, kind: str, window: Window) -> RateLimited:
    return RateLimited(
        f"Rate limit reached for {what}: limit {window.limit}. "
        f"Please try again in {reset_text(window.reset_s)}.",
        kind=kind,
        retry_after_s=window.reset_s,
    )


def _quota_spent(quota: Quota, most_tokens: int) -> InsufficientQuota:
    now = datetime.now(UTC)
    resets = quota.resets_at(now)
    left_s = None if resets is None else (resets - now).total_seconds()
    return InsufficientQuota(
        f"You exceeded your current quota: this key's {quota} tokens cannot cover this "
        f"request's {most_tokens} (prompt plus max_tokens)"
        + ("" if left_s is None else f"; it resets in {reset_text(left_s)}")
        + ". A lower max_tokens may fit.",
        retry_after_s=None if left_s is None else int(left_s),
    )


class Ticket:
    def __init__(
        self,
        meter: Meter | None,
        access: KeyAccess,
        endpoint: str,
        request_id: str,
        headers: dict[str, str],
    ) -> None:
        self._meter = meter
        self.access = access
        self._limits: KeyLimits = access.limits
        self._endpoint = endpoint
        self.request_id = request_id
        self._headers = headers
        self._started = time.perf_counter()
        self._started_at = datetime.now(UTC)
        self._first_token_at: float | None = None
        self.model = ""
        self._holding = False  # a concurrency place
        self._hold: Promise | None = None
        self._prompt_tokens = 0
        self._settled = False
        self._closed = False

    @classmethod
    def unmetered(cls, access: KeyAccess | None = None) -> Ticket:
        """A ticket that checks and records nothing (tests of the services alone)."""
        return cls(None, access or KeyAccess(key_id=0), "", uuid.uuid4().hex, {})

    @property
    def priority(self) -> Priority:
        return self._limits.priority

    async def start(self, model: str) -> None:
        """Counts the request against requests/min and concurrency (RateLimited)."""
        self.model = model[:200]
        try:
            await self._start()
        except RateLimited as exc:
            self._rejected(exc)
            raise

    async def _start(self) -> None:
        if self._meter is None or not self._limits.limits_rate:
            return
        limiter, key_id, limits = self._meter.limiter, self.access.key_id, self._limits
        if limits.rpm is not None:
            allowed, window = await limiter.count_request(key_id, limits.rpm)
            self._put_headers("requests", window)
            if not allowed:
                raise _over_window("requests per minute (RPM)", "requests", window)
        if limits.concurrency is not None:
            if not await limiter.take_place(key_id, limits.concurrency):
                raise RateLimited(
                    f"Rate limit reached for concurrent requests: limit {limits.concurrency}. "
                    "Please try again when one of this key's requests has finished.",
                    kind="requests",
                    retry_after_s=1,
                )
            self._holding = True

    async def admit(self, prompt_tokens: int, most_tokens: int) -> None:
        """The prompt is known: counts it against tokens/min and reserves `most_tokens`
        (prompt plus the most the answer may take) from the quota, or raises 429."""
        try:
            await self._admit(prompt_tokens, most_tokens)
        except (RateLimited, InsufficientQuota) as exc:
            self._rejected(exc)
            raise

    def _rejected(self, error: RateLimited | InsufficientQuota) -> None:
        metrics = None if self._meter is None else self._meter.metrics
        if metrics is not None:
            kind = "quota" if isinstance(error, InsufficientQuota) else error.type
            metrics.rejected(self.access.key_id, kind)

    async def _admit(self, prompt_tokens: int, most_tokens: int) -> None:
        if self._meter is not None:
            tpm = self._limits.tpm
            if tpm is not None:
                limiter = self._meter.limiter
                allowed, window = await limiter.admit_tokens(self.access.key_id, tpm, prompt_tokens)
                self._put_headers("tokens", window)
                if not allowed:
                    raise _over_window("tokens per minute (TPM)", "tokens", window)
            quota, leases = self._limits.quota, self._meter.leases
            if quota is not None and leases is not None:
                self._hold = await leases.reserve(self.access.key_id, quota, most_tokens)
                if self._hold is None:
                    raise _quota_spent(quota, most_tokens)
        self._prompt_tokens = prompt_tokens

    def first_token(self) -> None:
        if self._first_token_at is None:
            self._first_token_at = time.perf_counter()

    async def settle(
        self,
        *,
        completion_tokens: int,
        cached_tokens: int = 0,
        finish_reason: str | None = None,
        status_code: int = 200,
        prompt_tokens: int | None = None,
    ) -> None:
        """Writes the request's ledger row and turns its quota hold into what it used, in
        one commit, and counts its completion against tokens/min. Once."""
        if self._settled:
            return
        self._settled = True
        prompt = self._prompt_tokens if prompt_tokens is None else prompt_tokens
        if self._meter is None:
            return
        limiter, writer, key_id = self._meter.limiter, self._meter.writer, self.access.key_id
        if self._limits.tpm is not None:
            await limiter.charge_tokens(key_id, self._limits.tpm, completion_tokens)
        now = time.perf_counter()
        entry = UsageEntry(
            request_id=self.request_id,
            created_at=self._started_at,
            key_id=key_id,
            model=self.model,
            endpoint=self._endpoint,
            prompt_tokens=prompt,
            cached_tokens=cached_tokens,
            completion_tokens=completion_tokens,
            status_code=status_code,
            finish_reason=finish_reason,
            ttft_ms=None
            if self._first_token_at is None
            else (self._first_token_at - self._started) * 1000,
            duration_ms=(now - self._started) * 1000,
        )
        if self._meter.metrics is not None:
            self._meter.metrics.observe(entry)
        if writer is None:
            return
        hold = self._hold
        await writer.apply(
            Settlement(
                entry,
                hold_id=None if hold is None else hold.hold_id,
                key_id=key_id,
                period=None if hold is None else hold.period,
                tokens=0 if hold is None else prompt + completion_tokens,
                released=0 if hold is None else hold.tokens,
            )
        )

    async def close(self, status_code: int, *, completion_tokens: int = 0) -> None:
        """Ends the request: records it if it was not settled, and frees its concurrency
        place. Once. A client that left is charged what was done for it (the prompt and
        `completion_tokens`); a request that failed, nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._settled:
                charged = status_code == CLIENT_GONE
                await self.settle(
                    completion_tokens=completion_tokens if charged else 0,
                    prompt_tokens=None if charged else 0,
                    status_code=status_code,
                )
        finally:
            if self._holding and self._meter is not None:
                self._holding = False
                await self._meter.limiter.free_place(self.access.key_id)

    async def close_after_error(self, status_code: int, *, completion_tokens: int = 0) -> None:
        """`close` for a request that ended with an error: a failure to record it is only
        logged, so the error (a cancellation above all) stays what the caller raises."""
        try:
            await self.close(status_code, completion_tokens=completion_tokens)
        except Exception as exc:
            logger.warning("request %s not recorded: %s", self.request_id, exc)

    def _put_headers(self, kind: str, window: Window) -> None:
        self._headers[f"x-ratelimit-limit-{kind}"] = str(window.limit)
        self._headers[f"x-ratelimit-remaining-{kind}"] = str(window.remaining)
        self._headers[f"x-ratelimit-reset-{kind}"] = reset_text(window.reset_s)
