"""Which models this server offers, resolved from settings to files and ids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from privserve.config import Settings
from privserve.errors import ModelLoadError
from privserve.models.bundled import (
    BUNDLED_EMBEDDING_MODELS,
    BUNDLED_MODELS,
    directory_of,
    materialize,
)
from privserve.models.store import ModelStore


@dataclass(frozen=True)
class ChatModelFile:
    """A chat model's GGUF file, the id clients address it by, and its chat template
    setting (None: the file's own)."""

    model_id: str
    path: Path
    chat_template: str | None = None


def resolve_chat_models(settings: Settings) -> list[ChatModelFile]:
    """One spec per configured chat model, files in place; `model_id` and `chat_template`
    apply to the first. Two models with one id are refused."""
    specs = [_chat_spec(settings, name, first=i == 0) for i, name in enumerate(settings.model)]
    ids = [spec.model_id for spec in specs]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ModelLoadError(f"two chat models would share the id {', '.join(repeated)}")
    return specs


def _chat_spec(settings: Settings, name: str, *, first: bool) -> ChatModelFile:
    """`name` is a bundled model, a registered one or a .gguf path; the file exists after."""
    bundled = BUNDLED_MODELS.get(name)
    registered = _registered(settings, name, "chat")
    if bundled is not None:
        path = materialize(bundled, settings.models_dir)
        default_id = bundled.name
    elif registered is not None:
        path, default_id = registered
    elif Path(name).expanduser().is_file():
        path = Path(name).expanduser()
        default_id = path.stem
    else:
        path = _converted_precision(settings, name)
        default_id = name
    return ChatModelFile(
        model_id=(settings.model_id if first else None) or default_id,
        path=path,
        chat_template=settings.chat_template if first else None,
    )


def _converted_precision(settings: Settings, name: str) -> Path:
    """The one converted precision of the checkpoint `name` (`chatglm2-6b` finds
    `chatglm2-6b-q4_k_m`); several or none is an error that names what exists."""
    chat = [m for m in ModelStore(settings.models_dir).all() if m.kind == "chat"]
    wanted = name.lower()
    converted = [
        m
        for m in chat
        if (m.source and Path(m.source).name.lower() == wanted)
        or (m.precision and m.name.lower() == f"{wanted}-{m.precision}")
    ]
    if len(converted) == 1:
        return converted[0].path
    if converted:
        names = ", ".join(m.name for m in converted)
        raise ModelLoadError(
            f"{name!r} was converted at several precisions ({names}); name the one to serve"
        )
    known = ", ".join([*sorted(BUNDLED_MODELS), *(m.name for m in chat)])
    raise ModelLoadError(
        f"no chat model {name!r}: not a bundled or registered model (these exist: {known}) "
        "nor a .gguf file"
    )


def resolve_embedding_model(settings: Settings) -> tuple[str, Path] | None:
    """(id, directory) of the configured embedding model, or None when there is none."""
    name = settings.embedding.model
    if not name:
        return None
    bundled = BUNDLED_EMBEDDING_MODELS.get(name)
    if bundled is not None:
        return settings.embedding.model_id or bundled.name, directory_of(bundled)
    known = ", ".join(sorted(BUNDLED_EMBEDDING_MODELS))
    return _directory_model(
        settings,
        name,
        "embedding",
        settings.embedding.model_id,
        f"embedding model {name!r} is neither a bundled model ({known}), a registered one "
        "nor a sentence-transformers directory",
    )


def resolve_rerank_model(settings: Settings) -> tuple[str, Path] | None:
    """(id, directory) of the configured cross-encoder, or None: rerank then uses cosine."""
    name = settings.rerank.model
    if not name:
        return None
    return _directory_model(
        settings,
        name,
        "rerank",
        settings.rerank.model_id,
        f"rerank model {name!r} is neither a registered one nor a directory holding a "
        "sentence-transformers CrossEncoder (config.json, weights and tokenizer files)",
    )


def _directory_model(
    settings: Settings, name: str, kind: str, model_id: str | None, missing: str
) -> tuple[str, Path]:
    """(id, directory) of a model registered under `name`, or of the directory `name`."""
    registered = _registered(settings, name, kind)
    if registered is not None:
        path, default_id = registered
    else:
        path = Path(name).expanduser()
        if not path.is_dir():
            raise ModelLoadError(missing)
        default_id = path.name
    return model_id or default_id, path


def _registered(settings: Settings, name: str, kind: str) -> tuple[Path, str] | None:
    """(path, name) of a model registered under `name` for `kind`; a name registered for
    another kind is an error that says so."""
    model = ModelStore(settings.models_dir).get(name)
    if model is None:
        return None
    if model.kind != kind:
        raise ModelLoadError(f"{name!r} is registered as a {model.kind} model, not {kind}")
    if not model.path.exists():
        raise ModelLoadError(
            f"{name!r} is registered at {model.path}, which is gone "
            f"(privserve models remove {name})"
        )
    return model.path, model.name
