"""Admin wire types: API keys as `/admin/v1/keys` takes and shows them (never a key's
secret, but once, when it is made)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from privserve.protocol.common import RequestModel


class KeySettings(RequestModel):
    """What a key may do; on update, only the fields sent change."""

    owner: str | None = Field(None, max_length=200)
    models: list[str] | None = Field(
        None, max_length=256, description="Model ids or `*` patterns; empty: all."
    )
    networks: list[str] | None = Field(
        None, max_length=256, description="Client networks (CIDR); empty: any."
    )
    expires: str | None = Field(
        None, max_length=40, description="30d, 12h, 90m, 2w, or an ISO date; in the future."
    )
    admin: bool | None = Field(None, description="Whether the key may manage keys.")


class KeyCreate(KeySettings):
    name: str = Field(min_length=1, max_length=200)


class KeyUpdate(KeySettings):
    name: str | None = Field(None, min_length=1, max_length=200)


class KeyInfo(BaseModel):
    id: int
    object: Literal["api_key"] = "api_key"
    name: str
    owner: str | None
    prefix: str
    admin: bool
    models: list[str]
    networks: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyInfo):
    key: str = Field(description="The key itself, shown this once; only its hash is kept.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyInfo]
