"""Token log-probabilities in the two shapes OpenAI uses: chat's and text completions'."""

from __future__ import annotations

from collections.abc import Sequence

from privserve.engine.base import TokenLogprob
from privserve.protocol.chat import ChoiceLogprobs, LogprobEntry, TopLogprobEntry
from privserve.protocol.completions import CompletionLogprobs


def chat_logprobs(entries: Sequence[TokenLogprob]) -> ChoiceLogprobs:
    return ChoiceLogprobs(
        content=[
            LogprobEntry(
                token=e.token,
                logprob=e.logprob,
                bytes=list(e.bytes),
                top_logprobs=[
                    TopLogprobEntry(token=t.token, logprob=t.logprob, bytes=list(t.bytes))
                    for t in e.top
                ],
            )
            for e in entries
        ]
    )


def completion_logprobs(
    entries: Sequence[TokenLogprob], *, text_offset: int, with_top: bool
) -> CompletionLogprobs:
    """`text_offset` is where the first token's text starts in the choice's text."""
    offsets = []
    for entry in entries:
        offsets.append(text_offset)
        text_offset += len(entry.token)
    return CompletionLogprobs(
        tokens=[e.token for e in entries],
        token_logprobs=[e.logprob for e in entries],
        top_logprobs=[{t.token: t.logprob for t in e.top} for e in entries] if with_top else None,
        text_offset=offsets,
    )
