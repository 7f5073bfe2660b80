"""Which models this server offers, resolved from settings to files and ids."""

from __future__ import annotations

from pathlib import Path

from privserve.config import Settings
from privserve.engine.base import ModelSpec
from privserve.errors import ModelLoadError
from privserve.models.bundled import BUNDLED_MODELS, materialize


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
