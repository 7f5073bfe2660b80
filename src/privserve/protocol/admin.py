"""Admin wire types: API keys as `/admin/v1/keys` takes and shows them (never a key's
secret, but once, when it is made), and usage as `/admin/v1/usage` sums it."""

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
    rpm: int | None = Field(None, ge=1, le=2**31 - 1, description="Requests per minute.")
    tpm: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Tokens per minute, prompt plus completion."
    )
    concurrency: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Requests running at once."
    )
    quota: str | None = Field(
        None,
        max_length=40,
        description="Tokens in all or per UTC period: 2000000/month, 50000/day, 1000000/total.",
    )
    priority: Literal["interactive", "batch"] | None = Field(
        None, description="batch: waits behind interactive keys' requests (indexing jobs)."
    )


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
    rpm: int | None
    tpm: int | None
    concurrency: int | None
    quota: str | None
    quota_used: int | None = Field(description="Tokens of the quota's current period used.")
    quota_held: int | None = Field(
        description="Tokens of the current period held for running requests (servers take "
        "them in small leases); what is left is quota minus used minus held."
    )
    quota_resets_at: datetime | None
    priority: Literal["interactive", "batch"]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyInfo):
    key: str = Field(description="The key itself, shown this once; only its hash is kept.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyInfo]


class UsageGroup(BaseModel):
    group: str = Field(description="The key's name, the model, or the UTC day.")
    key_id: int | None = Field(None, description="With by=key: the key's id.")
    requests: int
    errors: int = Field(description="Requests answered with a status of 400 or above.")
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    total_tokens: int


class UsageReport(BaseModel):
    object: Literal["usage_report"] = "usage_report"
    by: Literal["key", "model", "day"]
    since: datetime | None
    data: list[UsageGroup]


class Caller(BaseModel):
    """The key a request came with: `GET /v1/privserve/me`."""

    object: Literal["caller"] = "caller"
    key_id: int
    name: str
    admin: bool = Field(description="Whether the key may manage keys, usage and models.")
    models: list[str] = Field(description="Model ids or `*` patterns it may use; empty: all.")
