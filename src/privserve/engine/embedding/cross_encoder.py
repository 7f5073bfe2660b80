"""A sentence-transformers CrossEncoder: reads a query and a document together, one score."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from privserve.engine.embedding.model import load_sentence_transformers
from privserve.engine.embedding.tokens import TokenCounter
from privserve.errors import ModelLoadError

logger = logging.getLogger(__name__)

Pair = tuple[str, str]


class CrossEncoderScorer:
    """Owns one CrossEncoder; construct it and call `score` on the torch thread."""

    def __init__(self, model_id: str, path: Path, *, dtype: str = "float32") -> None:
        model = load_sentence_transformers("CrossEncoder", path, "rerank model", dtype)
        if model.num_labels != 1:
            raise ModelLoadError(
                f"{path} is a classifier with {model.num_labels} labels; a reranker gives "
                "one relevance score per query-document pair"
            )
        self._model: Any = model
        self.model_id = model_id
        self.max_input_tokens = int(model.max_seq_length)
        self.tokens = TokenCounter(model.tokenizer)
        logger.info(
            "loaded rerank model %s from %s: %d tokens per pair, %s",
            model_id,
            path,
            self.max_input_tokens,
            dtype,
        )

    def score(self, pairs: Sequence[Pair]) -> npt.NDArray[np.float32]:
        """Relevance of each pair, through the model's activation (a sigmoid: 0 to 1).

        Pairs longer than the model reads are cut, as every cross-encoder reranker does."""
        scores = self._model.predict(
            list(pairs),
            batch_size=max(1, len(pairs)),
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs))
