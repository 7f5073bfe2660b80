"""Sequence slots and the prefix cache: which slot a new prompt takes and what it keeps.

Each slot remembers the tokens whose KV its sequence holds (a free slot: its last prompt).
A new prompt finds the slot with the longest common prefix and decodes only the rest: in
that slot when it is free and the prefix is most of the prompt cached there, else in an
empty (or the least recently used) slot into which the prefix is copied, so a long cached
prompt is not evicted for a short shared start. When a slot is still computing a prompt
this one shares (the n choices of one request, a burst of questions over one knowledge
base), the new prompt waits a step and copies it then.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from privserve.config import LlamaConfig


def default_parallel(context_length: int, cores: int | None = None) -> int:
    """Slots when none are configured: enough to keep the cores busy, bounded by KV memory."""
    cores = cores or os.cpu_count() or 1
    return max(1, min(16, 4 * cores, 65536 // context_length))


def configured_slots(llama: LlamaConfig) -> int:
    """The slots an engine with these settings has: `parallel`, else the default for its
    context on this machine's cores."""
    return llama.parallel or default_parallel(llama.n_ctx)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differs = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(differs[0]) if differs.size else n


@dataclass
class Slot:
    sequence: int
    cached: list[int] = field(default_factory=list)  # tokens in the KV cache, from position 0
    prompt: Sequence[int] = ()  # the prompt being served; empty when free
    last_used: int = 0

    @property
    def busy(self) -> bool:
        return bool(self.prompt)

    @property
    def prefilling(self) -> bool:
        return self.busy and len(self.cached) < len(self.prompt)


@dataclass(frozen=True)
class Placement:
    slot: Slot
    reused: int  # prompt tokens whose KV is already there (kept or copied)
    copy_from: Slot | None = None


class SlotTable:
    def __init__(self, count: int) -> None:
        self.slots = [Slot(i) for i in range(count)]

    def free(self) -> list[Slot]:
        return [s for s in self.slots if not s.busy]

    def busy(self) -> list[Slot]:
        return [s for s in self.slots if s.busy]

    def beyond_keep(self, kept_tokens: int) -> list[Slot]:
        """The free slots whose cache to drop, least recently used first, so that free
        slots keep at most `kept_tokens` cached tokens."""
        cached = sorted((s for s in self.free() if s.cached), key=lambda s: s.last_used)
        total = sum(len(s.cached) for s in cached)
        dropped = []
        for slot in cached:
            if total <= kept_tokens:
                break
            dropped.append(slot)
            total -= len(slot.cached)
        return dropped

    def place(self, prompt: Sequence[int]) -> Placement | None:
        """Where `prompt` should run, or None when no slot is free or it should wait a step.

        At least the prompt's last token is always decoded again: its logits pick the first
        token of the answer.
        """
        free = self.free()
        if not free:
            return None
        limit = len(prompt) - 1

        def reusable(slot: Slot) -> int:
            return min(common_prefix(slot.cached, prompt), limit)

        # Ties go to a free slot: then nothing needs copying.
        source = max(self.slots, key=lambda s: (reusable(s), not s.busy))
        reused = reusable(source)
        coming = max(
            (min(common_prefix(s.prompt, prompt), limit) for s in self.busy() if s.prefilling),
            default=0,
        )
        if coming > reused:
            return None
        # Continue in the source slot when this prompt shares most of the prompt cached there
        # (the same question again, the next question on the same notes, the next turn of a
        # conversation); a short shared start (a BOS, a chat header) is not worth evicting a
        # long cached prompt for.
        if not source.busy and 2 * reused >= len(source.cached):
            return Placement(source, reused)
        empty = [s for s in free if not s.cached]
        target = empty[0] if empty else min(free, key=lambda s: s.last_used)
        if target is source:
            return Placement(target, reused)
        return Placement(target, reused, copy_from=source if reused else None)
