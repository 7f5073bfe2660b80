"""What one key may do: which models, from which networks, until when, how much and how
often, at which priority, and whether it may manage keys. Checked on every request; settings
are validated before they are stored."""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from privserve.errors import InvalidRequest

_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_QUOTA = re.compile(r"^(\d+)(?:/(total|day|month))?$")

Priority = Literal["interactive", "batch"]
PRIORITIES: tuple[Priority, ...] = ("interactive", "batch")
QuotaPeriod = Literal["total", "day", "month"]
MAX_LIMIT = 2**31 - 1
MAX_QUOTA = 2**62


@dataclass(frozen=True)
class Quota:
    """A token budget: `tokens` in all, or per UTC day or month."""

    tokens: int
    period: QuotaPeriod = "total"

    def window(self, now: datetime | None = None) -> str:
        """The name of the period `now` falls in: `total`, `2026-11-29` or `2026-11`."""
        if self.period == "total":
            return "total"
        now = now or datetime.now(UTC)
        return now.strftime("%Y-%m-%d" if self.period == "day" else "%Y-%m")

    def resets_at(self, now: datetime | None = None) -> datetime | None:
        """When the current period ends; None for a total."""
        if self.period == "total":
            return None
        now = now or datetime.now(UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period == "day":
            return day + timedelta(days=1)
        first = day.replace(day=1)
        return (first + timedelta(days=32)).replace(day=1)

    def __str__(self) -> str:
        return f"{self.tokens}/{self.period}"


@dataclass(frozen=True)
class KeyLimits:
    """How much and how often a key may ask; None: no limit."""

    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # prompt plus completion tokens per minute
    concurrency: int | None = None  # requests running at once
    quota: Quota | None = None
    priority: Priority = "interactive"

    @property
    def limits_rate(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None


NO_LIMITS = KeyLimits()


@dataclass(frozen=True)
class KeyAccess:
    key_id: int
    is_admin: bool = False
    models: tuple[str, ...] = ()  # exact ids or `*` patterns; empty: every model
    networks: tuple[str, ...] = ()  # CIDR networks clients may call from; empty: any
    expires_at: datetime | None = None
    limits: KeyLimits = NO_LIMITS

    def allows_model(self, model_id: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model_id, p) for p in self.models)

    def allows_address(self, address: str | None) -> bool:
        if not self.networks:
            return True
        if address is None:
            return False
        try:
            client = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(client in ipaddress.ip_network(n) for n in self.networks)

    def has_expired(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        expires = self.expires_at
        if expires.tzinfo is None:  # SQLite hands back naive UTC times
            expires = expires.replace(tzinfo=UTC)
        return (now or datetime.now(UTC)) >= expires


def model_patterns(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """`qwen*,gemma3-270m` as patterns; empty: every model."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    patterns = tuple(item.strip() for item in items if item.strip())
    for pattern in patterns:
        if len(pattern) > 200 or any(c.isspace() for c in pattern):
            raise InvalidRequest(f"{pattern!r} is not a model id or pattern", param="models")
    return patterns


def networks(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """`10.0.0.0/8,192.168.1.7` as CIDR networks (a lone address is its own /32 or /128)."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    found = []
    for item in (i.strip() for i in items if i.strip()):
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise InvalidRequest(f"{item!r} is not a CIDR network", param="networks") from None
    return tuple(found)


def moment(text: str, now: datetime, *, ago: bool, what: str, param: str) -> datetime:
    """`30d`, `12h`, `90m` or `2w` from `now` (before it with `ago`), or an ISO date or time
    (UTC when it names no zone); InvalidRequest naming `param` for anything else."""
    match = _DURATION.match(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return now - delta if ago else now + delta
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(
            f"{text!r} is not {what}: give 30d, 12h, 90m, 2w, or an ISO date", param=param
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def expiry(text: str | None, now: datetime | None = None) -> datetime | None:
    """`30d`, `12h`, `90m`, `2w` from now, or an ISO date or time (UTC when it names no
    zone); it must lie in the future."""
    if not text:
        return None
    now = now or datetime.now(UTC)
    when = moment(text, now, ago=False, what="an expiry", param="expires")
    if when <= now:
        message = (
            "an expiry must lie in the future"
            if _DURATION.match(text.strip())
            else f"{text!r} lies in the past"
        )
        raise InvalidRequest(message, param="expires")
    return when


def as_json(values: Sequence[str]) -> str:
    return json.dumps(list(values))


def from_json(text: str | None) -> tuple[str, ...]:
    try:
        values = json.loads(text or "[]")
    except ValueError:
        return ()
    return tuple(str(v) for v in values) if isinstance(values, list) else ()


def limit(value: str | int | None, param: str) -> int | None:
    """A positive whole number of requests or tokens; None or `none`: no limit."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    try:
        number = int(value) if isinstance(value, str) else value
    except ValueError:
        raise InvalidRequest(
            f"{param} must be a whole number, not {value!r}", param=param
        ) from None
    if isinstance(number, bool) or not 1 <= number <= MAX_LIMIT:
        raise InvalidRequest(f"{param} must be between 1 and {MAX_LIMIT}", param=param)
    return number


def quota(text: str | None) -> Quota | None:
    """`2000000/month`, `50000/day`, `1000000/total` or `1000000` (a total); None or
    `none`: no quota."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    match = _QUOTA.match(text.strip())
    if match is None:
        raise InvalidRequest(
            f"{text!r} is not a quota: give tokens and a period, e.g. 2000000/month, "
            "50000/day or 1000000/total",
            param="quota",
        )
    tokens = int(match.group(1))
    if not 1 <= tokens <= MAX_QUOTA:
        raise InvalidRequest(f"a quota must be between 1 and {MAX_QUOTA} tokens", param="quota")
    period: QuotaPeriod = match.group(2) or "total"  # type: ignore[assignment]
    return Quota(tokens, period)


def priority(text: str | None) -> Priority:
    """`interactive` (the default) or `batch`."""
    value = (text or "interactive").strip().lower()
    if value not in PRIORITIES:
        raise InvalidRequest(
            f"{text!r} is not a priority: give interactive or batch", param="priority"
        )
    return value
