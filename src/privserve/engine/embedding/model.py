"""A sentence-transformers embedding model: tokenizer counts and normalized vectors."""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from privserve.errors import ModelLoadError

logger = logging.getLogger(__name__)


class SentenceEmbedder:
    """Owns one SentenceTransformer; `encode` runs on one worker thread at a time."""

    def __init__(self, model_id: str, path: Path, *, threads: int | None = None) -> None:
        # Never reach for a model hub: the model is a local directory.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelLoadError(
                "embedding models need the 'embed' extra: pip install 'privserve[embed]'"
            ) from exc
        if not path.is_dir():
            raise ModelLoadError(f"embedding model directory not found: {path}")
        if threads:
            torch.set_num_threads(threads)
        try:
            model = SentenceTransformer(str(path), device="cpu")
        except Exception as exc:  # sentence-transformers raises many kinds on a bad directory
            raise ModelLoadError(f"cannot load embedding model {path}: {exc}") from exc
        dimensions, max_tokens = model.get_sentence_embedding_dimension(), model.max_seq_length
        if dimensions is None or max_tokens is None:
            raise ModelLoadError(f"{path} does not say its vector size or input limit")
        self._model: Any = model
        self.model_id = model_id
        self.path = path
        self.dimensions = int(dimensions)
        self.max_input_tokens = int(max_tokens)
        # A fast tokenizer keeps its padding and truncation settings between calls, so two
        # threads using one corrupt each other's batches: counting gets its own copy, and
        # callers of it take turns (encoding runs on one thread at a time already).
        self._counting_tokenizer: Any = copy.deepcopy(self._model.tokenizer)
        self._counting = threading.Lock()
        self.vocab_size: int = int(len(self._counting_tokenizer))
        logger.info(
            "loaded embedding model %s from %s: %d dimensions, %d tokens",
            model_id,
            path,
            self.dimensions,
            self.max_input_tokens,
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model sees for each text, special tokens included, before truncation."""
        with self._counting:
            encoded = self._counting_tokenizer(
                list(texts), add_special_tokens=True, truncation=False
            )
        return [len(ids) for ids in encoded["input_ids"]]

    def detokenize(self, ids: Sequence[int]) -> str:
        with self._counting:
            return str(self._counting_tokenizer.decode(list(ids), skip_special_tokens=True))

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self._model.encode(
            list(texts),
            batch_size=max(1, len(texts)),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
