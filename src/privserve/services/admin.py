"""Managing keys for admin clients: settings validated as the CLI validates them, rows
turned into wire types without their hashes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from privserve.auth import access
from privserve.auth.keys import KeyStore
from privserve.errors import NotFound
from privserve.protocol.admin import KeyCreate, KeyCreated, KeyInfo, KeyList, KeyUpdate
from privserve.storage.tables import ApiKeyRow


def key_info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        name=row.name,
        owner=row.owner,
        prefix=row.prefix,
        admin=row.is_admin,
        models=list(access.from_json(row.models)),
        networks=list(access.from_json(row.networks)),
        created_at=_aware(row.created_at),
        expires_at=None if row.expires_at is None else _aware(row.expires_at),
        revoked_at=None if row.revoked_at is None else _aware(row.revoked_at),
    )


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class KeyAdmin:
    def __init__(self, store: KeyStore) -> None:
        self._store = store

    async def create(self, request: KeyCreate) -> KeyCreated:
        # Every setting is checked before anything is written.
        models = access.model_patterns(request.models)
        networks = access.networks(request.networks)
        expires_at = access.expiry(request.expires)
        issued = await self._store.create(
            request.name,
            owner=request.owner,
            expires_at=expires_at,
            is_admin=bool(request.admin),
            models=models,
            networks=networks,
        )
        return KeyCreated(**key_info(issued.row).model_dump(), key=issued.plaintext)

    async def list(self) -> KeyList:
        return KeyList(data=[key_info(row) for row in await self._store.all()])

    async def get(self, key_id: int) -> KeyInfo:
        row = await self._store.get(key_id)
        if row is None:
            raise NotFound(f"no key with id {key_id}", param="key_id")
        return key_info(row)

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
            fields["expires_at"] = access.expiry(request.expires)
        if "admin" in sent and request.admin is not None:
            fields["is_admin"] = request.admin
        row = await self._store.update(key_id, **fields)
        if row is None:
            raise NotFound(f"no active key with id {key_id}", param="key_id")
        return key_info(row)

    async def revoke(self, key_id: int) -> KeyInfo:
        row = await self._store.revoke_id(key_id)
        if row is None:
            raise NotFound(f"no active key with id {key_id}", param="key_id")
        return key_info(row)
