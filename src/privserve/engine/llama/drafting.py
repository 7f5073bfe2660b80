"""Drafts from the prompt (prompt lookup): the tokens that followed the answer's last words
the last time those words appeared in the prompt or the answer so far.

Answers to knowledge-base questions copy spans of their quotes, so a draft is often right;
the engine checks each drafted token against the model in the same batch as everyone's
next token (sample, then compare: the output is exactly what the model would have written
without drafts, for greedy and sampled requests alike) and keeps the longest right prefix.
A draft costs one batch row per token, so its length follows the sequence's recent
acceptance: long while drafts are right, none while they are wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# How fast the acceptance estimate follows the latest drafts.
_SMOOTHING = 0.5
# Below this acceptance a sequence stops drafting; each step without a draft lets the
# estimate drift back up, so a sequence that starts copying later drafts again.
_MIN_ACCEPTANCE = 0.2
_RECOVERY = 0.05


@dataclass(frozen=True)
class LookupShape:
    max_draft: int  # tokens drafted at most per step
    ngram_max: int = 3  # the longest run of last tokens looked up
    ngram_min: int = 2  # the shortest; one token matches too often to be worth a row


class PromptLookup:
    """One sequence's text as tokens, indexed by its n-grams, and its drafting state."""

    def __init__(self, prompt: Sequence[int], shape: LookupShape) -> None:
        self._shape = shape
        self._tokens: list[int] = []
        # An n-gram -> the position just after its latest occurrence that has a successor.
        self._follows: dict[tuple[int, ...], int] = {}
        self._acceptance = 0.5
        self.extend(prompt)

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            self._append(token)

    def _append(self, token: int) -> None:
        tokens = self._tokens
        end = len(tokens)  # the n-grams ending just before `token` now have a successor
        for n in range(self._shape.ngram_min, self._shape.ngram_max + 1):
            if end >= n:
                self._follows[tuple(tokens[end - n : end])] = end
        tokens.append(token)

    def draft(self, limit: int) -> list[int]:
        """Up to `limit` tokens that may come next; empty when nothing matches or drafts
        have lately been wrong."""
        if limit <= 0:
            return []
        length = min(limit, self.draft_length())
        if length <= 0:
            self._acceptance = min(1.0, self._acceptance + _RECOVERY)
            return []
        tokens = self._tokens
        for n in range(self._shape.ngram_max, self._shape.ngram_min - 1, -1):
            if len(tokens) < n:
                continue
            start = self._follows.get(tuple(tokens[-n:]))
            if start is not None:
                return tokens[start : start + length]
        return []

    def draft_length(self) -> int:
        if self._acceptance < _MIN_ACCEPTANCE:
            return 0
        return max(1, round(self._acceptance * self._shape.max_draft))

    def checked(self, drafted: int, accepted: int) -> None:
        """Learns how much of the last draft the model kept."""
        if drafted:
            rate = accepted / drafted
            self._acceptance += _SMOOTHING * (rate - self._acceptance)


def even_out(drafts: list[list[int]], rooms: list[int], last_tokens: list[int]) -> list[list[int]]:
    """The drafts cut or filled to one length, for a batch whose sequences must have equal
    rows: the longest draft's, within every sequence's room, else none at all. Filler
    repeats the sequence's last token: any fixed draft keeps sampling exact, and a token the
    model does not write is dropped like any missed draft."""
    length = min(max(map(len, drafts), default=0), min(rooms, default=0))
    if length <= 0:
        return [[] for _ in drafts]
    return [
        draft[:length] + [draft[-1] if draft else last] * (length - len(draft))
        for draft, last in zip(drafts, last_tokens, strict=True)
    ]
