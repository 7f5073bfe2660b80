"""One llama.cpp context with many sequences: a batch to fill, one decode, per-row logits.

Only the engine thread touches a context. A unified KV cache lets sequences share cached
prefixes (`copy_prefix`) at no cost, but every step attends over every sequence's cells; split,
each sequence has a stream of its own, a prefix is copied stream to stream, and llama.cpp
computes a step's rows in runs of consecutive sequence ids (so `decode` orders them).
Sliding-window (SWA) layers keep only their window unless `swa_full`: a kept prefix can then
be continued only where its window is still cached (`reuse_floor`), and the extra `holders`
sequences keep shared starts for that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from privserve.engine.llama.model import LlamaModel
from privserve.errors import EngineError, ModelLoadError


@dataclass(frozen=True)
class ContextShape:
    sequences: int  # parallel slots
    tokens_per_sequence: int  # the context window one request sees
    batch_tokens: int  # tokens per decode step, decode and prefill together
    threads: int
    holders: int = 0  # extra sequences that only hold shared prompt starts
    swa_full: bool = True  # SWA layers keep every position, not only their window
    # Logits rows one step may ask for: llama.cpp reserves a vocabulary-wide row for each
    # (512 MiB for Gemma's 262k tokens at a batch of 512). 0: one per batch token.
    outputs: int = 0
    unified: bool = True  # one KV cache for all sequences, else a stream each


class DecodeFailed(EngineError):
    """llama_decode refused the batch: out of KV cells, or an internal error."""


class CacheFull(DecodeFailed):
    """No room in the KV cache for the batch; nothing was computed and the batch is still
    queued, so the caller may free cells and decode again (or `discard` it)."""


class LlamaContext:
    def __init__(self, model: LlamaModel, shape: ContextShape) -> None:
        lib = model.lib
        self._lib: Any = lib
        self.shape = shape
        self.vocab_size = model.vocab_size
        params = lib.llama_context_default_params()
        # Each slot may hold a full context. Split, every sequence (holders too) gets a stream
        # of n_ctx / n_seq_max cells. Unified, cells shared by a copied prefix count once and
        # holders get no cells of their own: they mostly share their slots' cells, and what
        # they keep is dropped when a step finds no room. SWA layers get only their window
        # per sequence, holders included, unless swa_full.
        params.n_ctx = shape.tokens_per_sequence * (
            shape.sequences if shape.unified else shape.sequences + shape.holders
        )
        params.n_batch = shape.batch_tokens
        params.n_ubatch = min(shape.batch_tokens, 512)
        params.n_seq_max = shape.sequences + shape.holders
        # llama.cpp keeps room for a row per sequence whatever this says.
        self._max_outputs = (
            max(shape.outputs, params.n_seq_max) if shape.outputs else shape.batch_tokens
        )
        params.n_outputs_max = self._max_outputs
        params.n_threads = shape.threads
        params.n_threads_batch = shape.threads
        params.kv_unified = shape.unified
        params.swa_full = shape.swa_full
        params.no_perf = True
        self._ctx = lib.llama_init_from_model(model.handle, params)
        if not self._ctx:
            raise ModelLoadError(
                f"cannot create a context of {params.n_ctx} tokens for {model.spec.model_id}; "
                "lower the context size or the parallel slots"
            )
        self._memory = lib.llama_get_memory(self._ctx)
        self._window = 0 if shape.swa_full else model.sliding_window
        self._batch = lib.llama_batch_init(shape.batch_tokens, 0, 1)
        capacity = shape.batch_tokens
        # numpy views over the batch's C arrays: filling a batch costs no ctypes call per token.
        self._tokens = np.ctypeslib.as_array(self._batch.token, shape=(capacity,))
        self._positions = np.ctypeslib.as_array(self._batch.pos, shape=(capacity,))
        self._n_seq_ids = np.ctypeslib.as_array(self._batch.n_seq_id, shape=(capacity,))
        self._wants_logits = np.ctypeslib.as_array(self._batch.logits, shape=(capacity,))
        self._seq_id_rows = [self._batch.seq_id[i] for i in range(capacity)]
        self._sequences = np.zeros(capacity, dtype=np.int32)
        self._size = 0
        self._outputs = 0
        self._placed: npt.NDArray[np.intp] | None = None  # a row's place once ordered

    # -- batch ---------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        return self._size

    def add_run(
        self,
        tokens: list[int],
        start: int,
        sequence: int,
        *,
        logits_last: bool = False,
        logits_all: bool = False,
    ) -> int:
        """Queues consecutive tokens of one sequence; returns the last one's index (with
        `logits_all`, each token's logits row is its index)."""
        i, n = self._size, len(tokens)
        if i == 0:
            self._placed = None
        outputs = self._outputs + (n if logits_all else int(logits_last))
        if outputs > self._max_outputs:  # past it llama.cpp aborts the process
            raise EngineError(f"a step asked for {outputs} logits rows, over {self._max_outputs}")
        self._outputs = outputs
        self._tokens[i : i + n] = tokens
        self._positions[i : i + n] = np.arange(start, start + n, dtype=np.int32)
        self._n_seq_ids[i : i + n] = 1
        for row in self._seq_id_rows[i : i + n]:
            row[0] = sequence
        self._sequences[i : i + n] = sequence
        self._wants_logits[i : i + n] = logits_all
        self._wants_logits[i + n - 1] = logits_last or logits_all
        self._size = i + n
        return i + n - 1

    def decode(self) -> None:
        """Runs the queued batch through the model, then empties it; on CacheFull the batch
        stays queued."""
        if not self.shape.unified:
            self._order_by_sequence()
        self._batch.n_tokens = self._size
        status = self._lib.llama_decode(self._ctx, self._batch)
        if status == 1:
            raise CacheFull("no room in the KV cache for this step")
        self._size = self._outputs = 0
        if status != 0:
            raise DecodeFailed(f"llama_decode returned {status}")

    def _order_by_sequence(self) -> None:
        """Sorts the queued rows by sequence id, each sequence's in order: split streams are
        computed a run of consecutive ids at a time, so sequences 3, 0, 1 would take two
        passes where 0, 1, 3 takes one for 0 and 1."""
        n = self._size
        sequences = self._sequences[:n]
        if n < 2 or bool(np.all(sequences[:-1] <= sequences[1:])):
            return
        order = np.argsort(sequences, kind="stable")
        for column in (self._tokens, self._positions, self._wants_logits, self._sequences):
            column[:n] = column[:n][order]
        for row, sequence in zip(self._seq_id_rows[:n], sequences.tolist(), strict=True):
            row[0] = sequence
        placed = np.empty(n, dtype=np.intp)
        placed[order] = np.arange(n)
        self._placed = placed if self._placed is None else placed[self._placed]

    def discard(self) -> None:
        """Empties the queued batch without decoding it."""
        self._size = self._outputs = 0

    def batch_row(self, index: int) -> int:
        """Where the token `add_run` put at `index` went in the decoded batch (llama.cpp's
        index for its logits and samplers)."""
        return index if self._placed is None else int(self._placed[index])

    def logits(self, index: int) -> npt.NDArray[np.float32]:
        """The logits row of batch token `index` after `decode` (a view: copy to keep it)."""
        pointer = self._lib.llama_get_logits_ith(self._ctx, self.batch_row(index))
        return np.ctypeslib.as_array(pointer, shape=(self.vocab_size,))

    @property
    def handle(self) -> Any:
        """The raw context, for llama.cpp samplers."""
        return self._ctx

    # -- KV cache ------------------------------------------------------------------------

    def keep_prefix(self, sequence: int, length: int) -> bool:
        """Drops the sequence's cache from `length` on; False if this memory cannot cut there."""
        return bool(self._lib.llama_memory_seq_rm(self._memory, sequence, length, -1))

    def clear(self, sequence: int) -> None:
        self._lib.llama_memory_seq_rm(self._memory, sequence, -1, -1)

    def reuse_floor(self, sequence: int, cached: int) -> int:
        """The shortest prefix of the `cached` tokens of `sequence` that can be continued:
        its sliding-window layers must still hold the window before the cut. llama.cpp
        keeps a sequence's cached positions contiguous, so that is the oldest one's window."""
        if not self._window or not cached:
            return 0
        oldest = int(self._lib.llama_memory_seq_pos_min(self._memory, sequence))
        if oldest == 0:
            return 0
        if oldest < 0:  # the window layers hold nothing of it
            return cached + 1
        return oldest + self._window

    def copy_prefix(self, source: int, target: int, length: int) -> None:
        """Makes `target` hold the first `length` cached tokens of `source`: shared cells in a
        unified cache; split, llama.cpp copies only whole streams, so the copy is cut after."""
        self.clear(target)
        if self.shape.unified:
            self._lib.llama_memory_seq_cp(self._memory, source, target, 0, length)
            return
        self._lib.llama_memory_seq_cp(self._memory, source, target, -1, -1)
        self.keep_prefix(target, length)

    def close(self) -> None:
        if self._ctx:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx = None
