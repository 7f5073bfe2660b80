"""Which models this server offers, resolved from settings to files and ids."""

from __future__ import annotations

from pathlib import Path

from privserve.config import Settings
from privserve.engine.base import ModelSpec
from privserve.errors import ModelLoadError
from privserve.models.bundled import (
    BUNDLED_EMBEDDING_MODELS,
    BUNDLED_MODELS,
    directory_of,
    materialize,
)


def resolve_chat_model(settings: Settings) -> ModelSpec:
    """`settings.model` names a bundled model or a .gguf path; the file exists afterwards."""
    bundled = BUNDLED_MODELS.get(settings.model)
    if bundled is not None:
        path = materialize(bundled, settings.models_dir)
        default_id = bundled.name
    else:
        path = Path(settings.model).expanduser()
        if not path.is_file():
            known = ", ".join(sorted(BUNDLED_MODELS))
            raise ModelLoadError(
                f"model {settings.model!r} is neither a bundled model ({known}) nor a GGUF file"
            )
        default_id = path.stem
    return ModelSpec(
        model_id=settings.model_id or default_id,
        path=path,
        chat_template=settings.chat_template,
    )


def resolve_embedding_model(settings: Settings) -> tuple[str, Path] | None:
    """(id, directory) of the configured embedding model, or None when there is none."""
    name = settings.embedding.model
    if not name:
        return None
    bundled = BUNDLED_EMBEDDING_MODELS.get(name)
    if bundled is not None:
        return settings.embedding.model_id or bundled.name, directory_of(bundled)
    path = Path(name).expanduser()
    if not path.is_dir():
        known = ", ".join(sorted(BUNDLED_EMBEDDING_MODELS))
        raise ModelLoadError(
            f"embedding model {name!r} is neither a bundled model ({known}) "
            "nor a sentence-transformers directory"
        )
    return settings.embedding.model_id or path.name, path


def resolve_rerank_model(settings: Settings) -> tuple[str, Path] | None:
    """(id, directory) of the configured cross-encoder, or None: rerank then uses cosine."""
    name = settings.rerank.model
    if not name:
        return None
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ModelLoadError(
            f"rerank model {name!r} is not a directory holding a sentence-transformers "
            "CrossEncoder (config.json, weights and tokenizer files)"
        )
    return settings.rerank.model_id or path.name, path
