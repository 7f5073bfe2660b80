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


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
