"""Managing keys and reading usage for admin clients and the CLI: settings validated in one
place, rows turned into wire types without their hashes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from privserve.auth import access
from privserve.auth.keys import (
    ENV_ADMIN_KEY_ID,
    ENV_KEY_ID,
    KeyStore,
    key_limits,
)
from privserve.errors import NotFound
from privserve.protocol.admin import (
    Caller,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
    KeyUpdate,
    UsageGroup,
    UsageReport,
)
from privserve.storage.tables import ApiKeyRow
from privserve.storage.usage import UsageFilter, UsageGrouping, UsageRepo

ENV_KEY_NAMES = {ENV_KEY_ID: "PRIVSERVE_API_KEY", ENV_ADMIN_KEY_ID: "PRIVSERVE_ADMIN_KEY"}


def since(text: str | None, now: datetime | None = None) -> datetime | None:
    """`7d`, `24h`, `90m`, `2w` ago, or an ISO date or time (UTC when it names no zone)."""
    if not text:
        return None
    return access.moment(text, now or datetime.now(UTC), ago=True, what="a time", param="since")


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def key_limits_from(request: KeyCreate | KeyUpdate) -> dict[str, Any]:
    """The limits `request` sets, validated; only those it sent."""
    sent = request.model_fields_set
    fields: dict[str, Any] = {}
    for name in ("rpm", "tpm", "concurrency"):
        if name in sent:
            fields[name] = access.limit(getattr(request, name), name)
    if "quota" in sent:
        fields["quota"] = access.quota(request.quota)
    if "priority" in sent:
        fields["priority"] = access.priority(request.priority)
    return fields


class KeyAdmin:
    def __init__(self, store: KeyStore, usage: UsageRepo) -> None:
        self._store = store
        self._usage = usage

    async def key_info(
        self, row: ApiKeyRow, last_used: Mapping[int, datetime] | None = None
    ) -> KeyInfo:
        """The key as the wire shows it; `last_used` (every key's) saves a list a query per
        key."""
        if last_used is None:
            last_used = await self._usage.last_used(row.id)
        used_at = last_used.get(row.id)
        limits = key_limits(row)
        quota = limits.quota
        used = held = resets = None
        if quota is not None:
            used, held = await self._usage.quota_state(row.id, quota.window())
            resets = quota.resets_at()
        return KeyInfo(
            id=row.id,
            name=row.name,
            owner=row.owner,
            prefix=row.prefix,
            admin=row.is_admin,
            models=list(access.from_json(row.models)),
            networks=list(access.from_json(row.networks)),
            rpm=limits.rpm,
            tpm=limits.tpm,
            concurrency=limits.concurrency,
            quota=None if quota is None else str(quota),
            quota_used=used,
            quota_held=held,
            quota_resets_at=resets,
            priority=limits.priority,
            created_at=_aware(row.created_at),
            last_used_at=None if used_at is None else _aware(used_at),
            expires_at=None if row.expires_at is None else _aware(row.expires_at),
            revoked_at=None if row.revoked_at is None else _aware(row.revoked_at),
        )

    async def create(self, request: KeyCreate) -> KeyCreated:
        # Every setting is checked before anything is written.
        models = access.model_patterns(request.models)
        networks = access.networks(request.networks)
        expires_at = access.expiry(request.expires)
        limits = access.KeyLimits(**key_limits_from(request))
        issued = await self._store.create(
            request.name,
            owner=request.owner,
            expires_at=expires_at,
            is_admin=bool(request.admin),
            models=models,
            networks=networks,
            limits=limits,
        )
        info = await self.key_info(issued.row)
        return KeyCreated(**info.model_dump(), key=issued.plaintext)

    async def list(self) -> KeyList:
        last_used = await self._usage.last_used()
        rows = await self._store.all()
        return KeyList(data=[await self.key_info(row, last_used) for row in rows])

    async def get(self, key_id: int) -> KeyInfo:
        row = await self._store.get(key_id)
        if row is None:
            raise NotFound(f"no key with id {key_id}", param="key_id")
        return await self.key_info(row)

    async def find(self, ident: str) -> KeyInfo:
        """The key whose id, name or prefix is `ident`, active or not (see KeyStore.find)."""
        row = await self._store.find(ident, revoked_too=True)
        if row is None:
            raise NotFound(f"no key {ident!r}", param="key")
        return await self.key_info(row)

    async def update(self, key_id: int, request: KeyUpdate) -> KeyInfo:
        sent = request.model_fields_set
        fields: dict[str, Any] = {}
        if "name" in sent and request.name is not None:
            fields["name"] = request.name
        if "owner" in sent:
            fields["owner"] = request.owner
        if "models" in sent:
            fields["models"] = access.model_patterns(request.models)
        if "networks" in sent:
            fields["networks"] = access.networks(request.networks)
        if "expires" in sent:
            never = request.expires is None or request.expires == "never"
            fields["expires_at"] = None if never else access.expiry(request.expires)
        if "admin" in sent and request.admin is not None:
            fields["is_admin"] = request.admin
        fields.update(key_limits_from(request))
        row = await self._store.update(key_id, **fields)
        if row is None:
            raise NotFound(f"no active key with id {key_id}", param="key_id")
        return await self.key_info(row)

    async def revoke(self, key_id: int) -> KeyInfo:
        row = await self._store.revoke_id(key_id)
        if row is None:
            raise NotFound(f"no active key with id {key_id}", param="key_id")
        return await self.key_info(row)

    async def usage(
        self,
        *,
        key: str | None = None,
        model: str | None = None,
        since_text: str | None = None,
        by: UsageGrouping = "key",
    ) -> UsageReport:
        """Requests and tokens per key, model or UTC day; `key` is an id, name or prefix."""
        key_id = None
        if key is not None:
            row = await self._store.find(key, revoked_too=True)
            if row is None:
                raise NotFound(f"no key {key!r}", param="key")
            key_id = row.id
        return await self.usage_of(key_id, model=model, since_text=since_text, by=by)

    async def usage_of(
        self,
        key_id: int | None,
        *,
        model: str | None = None,
        since_text: str | None = None,
        by: UsageGrouping = "key",
    ) -> UsageReport:
        """As `usage`, for one key by its id (None: every key)."""
        start = since(since_text)
        sums = await self._usage.sums(UsageFilter(key_id, model, start), by)
        names = {row.id: row.name for row in await self._store.all()} if by == "key" else {}
        return UsageReport(
            by=by,
            since=start,
            data=[
                UsageGroup(
                    group=_key_name(int(s.group), names) if by == "key" else s.group,
                    key_id=int(s.group) if by == "key" else None,
                    requests=s.requests,
                    errors=s.errors,
                    prompt_tokens=s.prompt_tokens,
                    cached_tokens=s.cached_tokens,
                    completion_tokens=s.completion_tokens,
                    total_tokens=s.total_tokens,
                )
                for s in sums
            ],
        )

    async def caller(self, key: access.KeyAccess) -> Caller:
        """Who a key is, for a client that shows what the key may do."""
        row = None if key.key_id in ENV_KEY_NAMES else await self._store.get(key.key_id)
        return Caller(
            key_id=key.key_id,
            name=row.name if row is not None else _key_name(key.key_id, {}),
            admin=key.is_admin,
            models=list(key.models),
        )


def _key_name(key_id: int, names: dict[int, str]) -> str:
    return names.get(key_id) or ENV_KEY_NAMES.get(key_id) or f"key {key_id}"
