"""`/v1/models` wire types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "privserve"
    # Beyond OpenAI's fields (clients ignore them): what the model serves, and how.
    capabilities: list[str] = []
    description: str | None = None
    # Chat models: loaded, loading or unloaded (loaded on the first request), and what is
    # known of them without loading.
    state: Literal["loaded", "loading", "unloaded"] | None = None
    pinned: bool | None = None
    size_bytes: int | None = None
    precision: str | None = None
    context_length: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
