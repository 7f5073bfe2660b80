"""Sequence slots and the prefix cache: which slot a new prompt takes and what it keeps.

Each slot remembers the tokens whose KV its sequence holds (a free slot: its last prompt).
A new prompt finds the slot with the longest common prefix and decodes only the rest: in
that slot when it is free and the prefix is most of the prompt cached there, else in an
empty (or the least recently used) slot into which the prefix is copied, so a long cached
prompt is not evicted for a short shared start. When a slot is still computing a prompt
this one shares (the n choices of one request, a burst of questions over one knowledge
base), the new prompt waits a step and copies it then.

Where sliding-window layers keep only their window, a slot's cached prompt can be continued
only from where its window is still cached (the caller's `floor`), so starts shared by
several prompts are also kept in holders: extra sequences that serve no request. A prompt
that shares a start not yet held is computed up to its end first (`hold_at`), and that
prefix is copied into a holder.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from privserve.config import LlamaConfig

# A shared start shorter than this is not worth a holder (a BOS, a chat header).
MIN_HELD_TOKENS = 32


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
    holder: bool = False  # keeps a shared prompt start; never serves a request
    hold_at: int = 0  # copy this many prompt tokens into a holder once they are cached

    @property
    def busy(self) -> bool:
        return bool(self.prompt)

    @property
    def prefilling(self) -> bool:
        return self.busy and len(self.cached) < len(self.prompt)

    @property
    def known(self) -> Sequence[int]:
        """The prompt whose cache this slot has or is computing."""
        return self.prompt if self.busy else self.cached


@dataclass(frozen=True)
class Placement:
    slot: Slot
    reused: int  # prompt tokens whose KV is already there (kept or copied)
    copy_from: Slot | None = None
    hold_at: int = 0  # a shared start to copy into a holder once computed; 0: none


class SlotTable:
    def __init__(self, count: int, holders: int = 0, *, contiguous: bool = False) -> None:
        """`contiguous`: new prompts go next to running ones where they can (split KV
        streams compute a step's rows a run of consecutive slots at a time)."""
        self.slots = [Slot(i) for i in range(count)]
        self.holders = [Slot(count + i, holder=True) for i in range(holders)]
        self._uses = itertools.count(1)
        self._contiguous = contiguous

    def touch(self, holder: Slot) -> None:
        """Marks a holder as just used (holders are replaced least recently used first)."""
        holder.last_used = next(self._uses)

    def sources(self) -> list[Slot]:
        """Everything a prompt's cached prefix may come from: slots and holders."""
        return self.slots + self.holders

    def holder_to_fill(self) -> Slot:
        """An empty holder, else the least recently used one."""
        empty = [h for h in self.holders if not h.cached]
        return empty[0] if empty else min(self.holders, key=lambda h: h.last_used)

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

    def _target(self, free: list[Slot]) -> Slot:
        """The free slot a new prompt takes: an empty one, else the least recently used;
        contiguous, the one nearest the running slots first, between two of them before
        beside one (so it joins or extends a run rather than starting one)."""
        if self._contiguous:
            busy = [s.sequence for s in self.slots if s.busy]

            def runs_after(slot: Slot) -> tuple[int, int]:
                distance = min((abs(slot.sequence - i) for i in busy), default=0)
                neighbours = sum(abs(slot.sequence - i) == 1 for i in busy)
                return distance, -neighbours

            return min(free, key=lambda s: (*runs_after(s), bool(s.cached), s.last_used))
        empty = [s for s in free if not s.cached]
        return empty[0] if empty else min(free, key=lambda s: s.last_used)

    def gathering_moves(self, most: int) -> list[tuple[Slot, Slot]]:
        """Up to `most` (running slot, free slot) moves that bring the running slots into one
        run of consecutive ids: those outside the window of ids that already holds the most
        of them, each into a free slot inside it. Contiguous tables only."""
        if not self._contiguous:
            return []
        busy = [s.busy for s in self.slots]
        count = sum(busy)
        if count < 2:
            return []
        held = [sum(busy[a : a + count]) for a in range(len(busy) - count + 1)]
        start = max(range(len(held)), key=held.__getitem__)
        if held[start] == count:
            return []
        window = range(start, start + count)
        outside = [s for s in self.slots if s.busy and s.sequence not in window]
        into = [self.slots[i] for i in window if not self.slots[i].busy]
        return list(zip(outside, into, strict=False))[:most]

    def swap(self, moved: Slot, into: Slot) -> None:
        """After the engine copied `moved`'s cache into `into`'s sequence: each takes the
        other's place (and sequence id); `into`'s kept prompt was overwritten."""
        moved.sequence, into.sequence = into.sequence, moved.sequence
        self.slots[moved.sequence], self.slots[into.sequence] = moved, into
        into.cached = []

    def place(
        self, prompt: Sequence[int], floor: Callable[[Slot], int] = lambda _: 0
    ) -> Placement | None:
        """Where `prompt` should run, or None when no slot is free or it should wait a step.

        `floor(slot)` is the shortest prefix of the slot's cache that can be continued. At
        least the prompt's last token is always decoded again: its logits pick the first
        token of the answer.
        """
        free = self.free()
        if not free:
            return None
        limit = len(prompt) - 1

        def shared(slot: Slot) -> int:
            return min(common_prefix(slot.known, prompt), limit)

        def reusable(slot: Slot) -> int:
            length = min(common_prefix(slot.cached, prompt), limit)
            return length if length >= floor(slot) else 0

        # Ties go to a free slot (nothing to copy), then to a slot over a holder.
        source = max(self.sources(), key=lambda s: (reusable(s), not s.busy, not s.holder))
        reused = reusable(source)
        held = max((reusable(h) for h in self.holders), default=0)

        def worth_holding(length: int) -> bool:
            return bool(self.holders) and length - held >= MIN_HELD_TOKENS

        # A slot still computing a longer start this prompt shares: wait and copy it then.
        coming = [
            (length, s) for s in self.busy() if (length := shared(s)) > max(reused, len(s.cached))
        ]
        if coming:
            length, slot = max(coming, key=lambda c: c[0])
            if worth_holding(length) and not len(slot.cached) < slot.hold_at <= length:
                slot.hold_at = length
            return None
        longest = max((shared(s) for s in self.slots), default=0)
        hold_at = longest if worth_holding(longest) and longest >= reused else 0
        # Continue in the source slot when this prompt shares most of the prompt cached there
        # (the same question again, the next question on the same notes, the next turn of a
        # conversation); a short shared start (a BOS, a chat header) is not worth evicting a
        # long cached prompt for.
        if not source.busy and not source.holder and 2 * reused >= len(source.cached):
            return Placement(source, reused, hold_at=hold_at)
        target = self._target(free)
        if target is source:
            return Placement(target, reused, hold_at=hold_at)
        return Placement(target, reused, copy_from=source if reused else None, hold_at=hold_at)
