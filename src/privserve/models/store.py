"""Models registered by name in PRIVSERVE_HOME/models/registry.json: converted GGUF files,
GGUF files added by hand, sentence-transformers embedding and rerank directories."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from privserve.errors import ModelLoadError

Kind = Literal["chat", "embedding", "rerank"]


class RegisteredModel(BaseModel):
    name: str
    kind: Kind
    path: Path
    precision: str | None = None  # f16, bf16, q8_0, q4_k_m, ... for GGUF files
    size_bytes: int | None = None
    context_length: int | None = None
    chat_template: str | None = None  # the template's name, or "embedded" when the GGUF has one
    architecture: str | None = None
    source: str | None = None  # the checkpoint it was converted from
    added: datetime = Field(default_factory=lambda: datetime.now(UTC))


class _RegistryFile(BaseModel):
    models: dict[str, RegisteredModel] = {}


class ModelStore:
    def __init__(self, models_dir: Path) -> None:
        self.file = models_dir / "registry.json"

    def all(self) -> list[RegisteredModel]:
        return sorted(self._read().models.values(), key=lambda m: m.name)

    def get(self, name: str) -> RegisteredModel | None:
        return self._read().models.get(name)

    def put(self, model: RegisteredModel) -> None:
        registry = self._read()
        registry.models[model.name] = model
        self._write(registry)

    def remove(self, name: str) -> RegisteredModel | None:
        registry = self._read()
        removed = registry.models.pop(name, None)
        if removed is not None:
            self._write(registry)
        return removed

    def _read(self) -> _RegistryFile:
        if not self.file.is_file():
            return _RegistryFile()
        try:
            return _RegistryFile.model_validate(json.loads(self.file.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, ValidationError) as exc:
            raise ModelLoadError(f"cannot read the model registry {self.file}: {exc}") from exc

    def _write(self, registry: _RegistryFile) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.file.with_name(f".{self.file.name}.{os.getpid()}.partial")
        partial.write_text(registry.model_dump_json(indent=2), encoding="utf-8")
        partial.replace(self.file)  # never half a registry, even if interrupted
