"""API keys: made with high entropy, stored as SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from privserve.auth.access import KeyAccess, KeyLimits, Quota, as_json, from_json
from privserve.config import Settings
from privserve.errors import InvalidRequest
from privserve.storage.changes import ChangeCounter, open_change_counter
from privserve.storage.db import open_database
from privserve.storage.repos import ActiveKey, ApiKeyRepo
from privserve.storage.tables import ApiKeyRow

KEY_PREFIX = "sk-ps-"
ENV_KEY_NAME = "PRIVSERVE_API_KEY"
PREFIX_LENGTH = 12  # what lists show and lookups narrow by; far too short to guess a key from
ENV_KEY_ID = 0  # the id requests made with the environment's key carry; never a row's
ENV_ADMIN_KEY_ID = -1  # the same for PRIVSERVE_ADMIN_KEY's


def make_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys are random with 256 bits of entropy, so a fast hash cannot be brute-forced;
    # a key set by hand through PRIVSERVE_API_KEY is the operator's own choice.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]


def parse_bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def limit_columns(limits: KeyLimits) -> dict[str, Any]:
    quota = limits.quota
    return {
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "concurrency": limits.concurrency,
        "quota_tokens": None if quota is None else quota.tokens,
        "quota_period": None if quota is None else quota.period,
        "priority": limits.priority,
    }


def key_limits(row: ActiveKey | ApiKeyRow) -> KeyLimits:
    quota = None
    if row.quota_tokens is not None:
        quota = Quota(row.quota_tokens, row.quota_period or "total")  # type: ignore[arg-type]
    return KeyLimits(
        rpm=row.rpm,
        tpm=row.tpm,
        concurrency=row.concurrency,
        quota=quota,
        priority="batch" if row.priority == "batch" else "interactive",
    )


@dataclass(frozen=True)
class IssuedKey:
    row: ApiKeyRow
    plaintext: str  # shown once, never stored


class KeyStore:
    """Keys in the database, and the one the environment carries.

    With a change counter, lookups are remembered until anyone writes to the database, so a
    revocation still takes effect on the next request. The environment's key (the old
    script's Docker pattern) is never stored: it is valid exactly while the server is
    started with it."""

    MAX_REMEMBERED_PREFIXES = 4096  # wrong keys are remembered too; this bounds them

    def __init__(
        self,
        repo: ApiKeyRepo,
        changes: ChangeCounter | None = None,
        *,
        environment_key: str | None = None,
        environment_admin_key: str | None = None,
    ) -> None:
        self._repo = repo
        self._changes = changes
        self._seen_version: int | None = None
        self._by_prefix: dict[str, Sequence[ActiveKey]] = {}
        self._environment_keys = []
        if environment_key is not None:
            self._environment_keys.append(ActiveKey(ENV_KEY_ID, hash_key(environment_key)))
        if environment_admin_key is not None:
            self._environment_keys.append(
                ActiveKey(ENV_ADMIN_KEY_ID, hash_key(environment_admin_key), is_admin=True)
            )

    @property
    def has_environment_key(self) -> bool:
        return bool(self._environment_keys)

    async def create(
        self,
        name: str,
        *,
        owner: str | None = None,
        expires_at: datetime | None = None,
        is_admin: bool = False,
        models: Sequence[str] = (),
        networks: Sequence[str] = (),
        limits: KeyLimits | None = None,
    ) -> IssuedKey:
        """A new key under a name no active key has: `keys revoke NAME` must mean one key.
        `models`, `networks` and `limits` are already validated (`auth.access`); empty: any."""
        existing = await self._repo.active_named(name)
        if existing is not None:
            raise InvalidRequest(
                f"an active key is named {name!r} already (id {existing.id}); pick another "
                "name, or revoke that one first",
                param="name",
            )
        plaintext = make_key()
        row = await self._repo.add(
            name=name,
            prefix=key_prefix(plaintext),
            key_hash=hash_key(plaintext),
            owner=owner,
            expires_at=expires_at,
            is_admin=is_admin,
            models=as_json(models),
            networks=as_json(networks),
            **limit_columns(limits or KeyLimits()),
        )
        self._forget_remembered()
        return IssuedKey(row, plaintext)

    async def verify(self, presented: str) -> KeyAccess | None:
        """What the presented key may do; None when no active key matches."""
        digest = hash_key(presented)
        found = None
        candidates = list(await self._active_with_prefix(key_prefix(presented)))
        candidates.extend(self._environment_keys)
        for row in candidates:
            # Check every candidate so timing does not depend on which one matched.
            if hmac.compare_digest(row.key_hash, digest):
                found = row
        if found is None:
            return None
        return KeyAccess(
            key_id=found.id,
            is_admin=found.is_admin,
            models=from_json(found.models),
            networks=from_json(found.networks),
            expires_at=found.expires_at,
            limits=key_limits(found),
        )

    async def _active_with_prefix(self, prefix: str) -> Sequence[ActiveKey]:
        if self._changes is None:
            return await self._repo.active_with_prefix(prefix)
        version = self._changes.version()  # read before the query: a write after it shows
        if version != self._seen_version or len(self._by_prefix) >= self.MAX_REMEMBERED_PREFIXES:
            self._by_prefix.clear()
            self._seen_version = version
        rows = self._by_prefix.get(prefix)
        if rows is None:
            rows = await self._repo.active_with_prefix(prefix)
            if self._seen_version == version:  # else a write came while we asked: don't keep
                self._by_prefix[prefix] = rows
        return rows

    async def all(self) -> Sequence[ApiKeyRow]:
        return await self._repo.all()

    async def get(self, key_id: int) -> ApiKeyRow | None:
        return await self._repo.get(key_id)

    async def update(self, key_id: int, **fields: Any) -> ApiKeyRow | None:
        """Changes an active key's settings (already validated); None when there is no
        such active key. A new name must be free."""
        name = fields.get("name")
        if name is not None:
            existing = await self._repo.active_named(name)
            if existing is not None and existing.id != key_id:
                raise InvalidRequest(f"an active key is named {name!r} already", param="name")
        for listed in ("models", "networks"):
            if listed in fields:
                fields[listed] = as_json(fields[listed])
        if "quota" in fields:
            quota: Quota | None = fields.pop("quota")
            fields["quota_tokens"] = None if quota is None else quota.tokens
            fields["quota_period"] = None if quota is None else quota.period
        row = await self._repo.update(key_id, fields)
        self._forget_remembered()
        return row

    async def count_active(self) -> int:
        return await self._repo.count_active()

    async def find(self, ident: str, *, revoked_too: bool = False) -> ApiKeyRow | None:
        """The one active key whose id, name or prefix is `ident` (with `revoked_too`, a
        revoked one when no active key matches); None when none does. An `ident` several
        keys share is an error that lists their ids: it names no key."""
        matches = await self._repo.matching(ident)
        active = [row for row in matches if row.revoked_at is None]
        candidates = active or (matches if revoked_too else [])
        if len(candidates) > 1:
            ids = ", ".join(str(row.id) for row in candidates)
            state = "active " if active else ""
            raise InvalidRequest(
                f"{ident!r} matches {len(candidates)} {state}keys (ids {ids}); name one by its id"
            )
        return candidates[0] if candidates else None

    async def revoke(self, ident: str) -> ApiKeyRow | None:
        """Revokes the one active key whose id, name or prefix is `ident` (see `find`);
        None when none matches, and nothing is revoked when several do."""
        row = await self.find(ident)
        return None if row is None else await self.revoke_id(row.id)

    async def revoke_id(self, key_id: int) -> ApiKeyRow | None:
        """Revokes the active key `key_id`; None when there is none."""
        row = await self._repo.revoke(key_id)
        self._forget_remembered()
        return row

    def _forget_remembered(self) -> None:
        # A change made here holds for this process's next request at once; PostgreSQL's
        # notice of it may come a few milliseconds later.
        self._by_prefix.clear()


@asynccontextmanager
async def open_key_store(
    settings: Settings, db: AsyncEngine | None = None
) -> AsyncIterator[KeyStore]:
    """The key store on `db` (default: the settings' database, migrated, and disposed on the
    way out), with PRIVSERVE_API_KEY's and PRIVSERVE_ADMIN_KEY's keys when they are set."""
    async with AsyncExitStack() as stack:
        if db is None:
            db = await stack.enter_async_context(open_database(settings.database_url))
        changes = await open_change_counter(settings.database_url)
        if changes is not None:
            stack.callback(changes.close)
        secret = None if settings.api_key is None else settings.api_key.get_secret_value()
        admin = None if settings.admin_key is None else settings.admin_key.get_secret_value()
        yield KeyStore(ApiKeyRepo(db), changes, environment_key=secret, environment_admin_key=admin)
