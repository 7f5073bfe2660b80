"""Token counts for usage and input limits, from a model's own tokenizer."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any


class TokenCounter:
    """Counts tokens with private copies of a Hugging Face tokenizer.

    A fast tokenizer keeps its padding and truncation settings between calls, so two threads
    using one corrupt each other's batches: the model keeps its own, and counting gets copies.
    Small inputs are counted on the event loop with a copy no other thread touches (a thread
    hop costs more than the counting); large ones on worker threads, taking turns on another.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._inline = _Counting(tokenizer)
        self._threaded = _Counting(tokenizer)
        self._threaded_lock = threading.Lock()
        self.vocab_size = self._inline.vocab_size

    def count_inline(
        self, texts: Sequence[str], pairs_with: Sequence[str] | None = None
    ) -> list[int]:
        """Only from the event loop's thread."""
        return self._inline.count(texts, pairs_with, parallel=False)

    def count(self, texts: Sequence[str], pairs_with: Sequence[str] | None = None) -> list[int]:
        """From any thread."""
        with self._threaded_lock:
            return self._threaded.count(texts, pairs_with, parallel=True)

    def detokenize(self, ids: Sequence[int]) -> str:
        """Only from the event loop's thread."""
        return self._inline.detokenize(ids)


class _Counting:
    """One tokenizer copy. A fast tokenizer is asked through its Rust backend directly: the
    Python wrapper around it cost more than the tokenizing for one short text."""

    def __init__(self, tokenizer: Any) -> None:
        self._wrapper: Any = copy.deepcopy(tokenizer)
        backend = getattr(self._wrapper, "backend_tokenizer", None)
        if backend is not None:
            backend.no_truncation()
            backend.no_padding()
        self._backend: Any = backend
        self.vocab_size = int(len(self._wrapper))

    def count(
        self, texts: Sequence[str], pairs_with: Sequence[str] | None, *, parallel: bool
    ) -> list[int]:
        """Tokens the model sees for each text (or text pair), special tokens included,
        before truncation."""
        inputs: list[Any] = (
            list(texts) if pairs_with is None else list(zip(texts, pairs_with, strict=True))
        )
        if self._backend is None:
            second = None if pairs_with is None else list(pairs_with)
            encoded = self._wrapper(list(texts), second, add_special_tokens=True)
            return [len(ids) for ids in encoded["input_ids"]]
        if parallel:  # the batch call spreads over the tokenizer's own thread pool
            return [len(e.ids) for e in self._backend.encode_batch(inputs)]
        # One at a time: waking that pool costs more than a few short texts.
        return [
            len(self._backend.encode(*(i if isinstance(i, tuple) else (i,))).ids) for i in inputs
        ]

    def detokenize(self, ids: Sequence[int]) -> str:
        return str(self._wrapper.decode(list(ids), skip_special_tokens=True))
