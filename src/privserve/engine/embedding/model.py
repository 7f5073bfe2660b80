"""A sentence-transformers embedding model: tokenizer counts and normalized vectors."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from privserve.engine.embedding.tokens import TokenCounter
from privserve.errors import ModelLoadError

logger = logging.getLogger(__name__)


def load_sentence_transformers(
    class_name: str, path: Path, what: str, dtype: str = "float32"
) -> Any:
    """A sentence-transformers `class_name` (SentenceTransformer, CrossEncoder) loaded from
    the directory `path` on the CPU, its weights in `dtype` (a torch dtype's name); every
    failure is a ModelLoadError naming `what`."""
    # Never reach for a model hub: models are local directories.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import sentence_transformers
    except ImportError as exc:
        raise ModelLoadError(
            "embedding and rerank models need the 'embed' extra: pip install 'privserve[embed]'"
        ) from exc
    if not path.is_dir():
        raise ModelLoadError(f"{what} directory not found: {path}")
    _quiet_transformers()
    try:
        model = getattr(sentence_transformers, class_name)(str(path), device="cpu")
    except Exception as exc:  # sentence-transformers raises many kinds on a bad directory
        raise ModelLoadError(f"cannot load {what} {path}: {exc}") from exc
    if dtype != "float32":
        import torch

        model.to(getattr(torch, dtype))
    return model


def _quiet_transformers() -> None:
    # A server's log is no terminal: no "Loading weights" progress bar on every start.
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def embedding_dimension(model: Any) -> int | None:
    """The vector size; sentence-transformers renamed the method that tells it."""
    method = getattr(model, "get_embedding_dimension", None)
    if method is None:
        method = model.get_sentence_embedding_dimension
    value = method()
    return None if value is None else int(value)


def trained_to_shorten(path: Path) -> bool:
    """Whether the model card says the model was trained with MatryoshkaLoss, the loss that
    makes a vector's leading dimensions a usable shorter vector."""
    card = path / "README.md"
    return card.is_file() and "MatryoshkaLoss" in card.read_text(encoding="utf-8", errors="ignore")


class SentenceEmbedder:
    """Owns one SentenceTransformer; construct it and call `encode` on the torch thread."""

    def __init__(
        self,
        model_id: str,
        path: Path,
        *,
        shortenable: bool | None = None,
        dtype: str = "float32",
    ) -> None:
        model = load_sentence_transformers("SentenceTransformer", path, "embedding model", dtype)
        dimensions, max_tokens = embedding_dimension(model), model.max_seq_length
        if dimensions is None or max_tokens is None:
            raise ModelLoadError(f"{path} does not say its vector size or input limit")
        self._model: Any = model
        self.model_id = model_id
        self.dimensions = int(dimensions)
        self.max_input_tokens = int(max_tokens)
        self.shortenable = trained_to_shorten(path) if shortenable is None else shortenable
        self.tokens = TokenCounter(model.tokenizer)
        self.prompts: dict[str, str] = {str(k): str(v) for k, v in (model.prompts or {}).items()}
        default = model.default_prompt_name
        self.default_prompt_name = str(default) if default in self.prompts else None
        logger.info(
            "loaded embedding model %s from %s: %d dimensions, %d tokens, %s%s%s",
            model_id,
            path,
            self.dimensions,
            self.max_input_tokens,
            dtype,
            ", can shorten" if self.shortenable else "",
            f", prompts: {', '.join(self.prompts)}" if self.prompts else "",
        )

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self._model.encode(
            list(texts),
            batch_size=max(1, len(texts)),
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        rows: npt.NDArray[np.float32] = np.asarray(vectors, dtype=np.float32)
        # Normalized here, in float32, not by sentence-transformers at the model's precision:
        # there a bfloat16 vector's length would be 1 only to ~1e-3.
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        rows /= np.maximum(norms, np.finfo(np.float32).tiny)
        return rows
