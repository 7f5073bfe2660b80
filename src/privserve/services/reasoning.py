"""A thinking model's answer, split: the `<think>…</think>` block is the reasoning, the rest
the content.

Only a block at the very start counts (after spaces), as llama.cpp's and vLLM's parsers
read it: a model that writes `<think>` later in its answer is quoting it. A template that
opens the block in the prompt itself has the model start inside it. Text that may be the
start of a tag is held back until the next piece says whether it is, so a tag split across
tokens is never sent half as reasoning and half as content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from privserve.config import ModelSettings, ReasoningFormat
from privserve.engine.base import TemplateThinking

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
# What Qwen3's template writes for thinking off: an empty block the model answers after.
EMPTY_BLOCK = f"{OPEN_TAG}\n\n{CLOSE_TAG}\n\n"

_State = Literal["before", "inside", "between", "after"]


@dataclass(frozen=True)
class Split:
    reasoning: str = ""
    content: str = ""

    def __add__(self, other: Split) -> Split:
        return Split(self.reasoning + other.reasoning, self.content + other.content)


class ReasoningSplitter:
    """One choice's streamed text, fed piece by piece, split as it comes."""

    def __init__(self, *, starts_inside: bool = False) -> None:
        self._state: _State = "inside" if starts_inside else "before"
        self._held = ""
        self.had_block = starts_inside
        self.reasoning_done = False  # the block was closed (or there was none)

    @property
    def in_reasoning(self) -> bool:
        return self._state == "inside"

    def feed(self, text: str) -> Split:
        self._held += text
        out = Split()
        while self._held:
            step = self._step()
            if step is None:  # the held text may still be a tag: wait for more
                break
            out = out + step
        return out

    def finish(self) -> Split:
        """What is still held, when the answer ends (a tag that never completed is text)."""
        held, self._held = self._held, ""
        if self._state == "inside":
            return Split(reasoning=held)
        self.reasoning_done = True
        return Split(content=held if self._state != "between" else held.lstrip())

    def _step(self) -> Split | None:
        held = self._held
        if self._state == "before":
            start = held.lstrip()
            if not start:
                return None
            if start.startswith(OPEN_TAG):
                self._state = "inside"
                self.had_block = True
                self._held = start[len(OPEN_TAG) :]
                return Split()
            if OPEN_TAG.startswith(start):
                return None
            self._state = "after"
            self.reasoning_done = True
            self._held = ""
            return Split(content=held)
        if self._state == "inside":
            end = held.find(CLOSE_TAG)
            if end >= 0:
                self._state = "between"
                self.reasoning_done = True
                self._held = held[end + len(CLOSE_TAG) :]
                return Split(reasoning=held[:end])
            keep = _partial_tag_length(held, CLOSE_TAG)
            self._held = held[len(held) - keep :] if keep else ""
            return Split(reasoning=held[: len(held) - keep]) if len(held) > keep else None
        if self._state == "between":
            # The spaces between the block and the answer belong to neither.
            held = held.lstrip()
            if not held:
                self._held = ""
                return None
            self._state = "after"
        self._held = ""
        return Split(content=held)


def split_reasoning(text: str, *, starts_inside: bool = False) -> Split:
    """A whole answer, split."""
    splitter = ReasoningSplitter(starts_inside=starts_inside)
    return splitter.feed(text) + splitter.finish()


def _partial_tag_length(text: str, tag: str) -> int:
    """How many of `text`'s last characters are the start of `tag`."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-length:]):
            return length
    return 0


class ChoiceReasoning:
    """A choice's reasoning split off as its tokens come, and counted: the tokens up to the
    one that closed the block (all of them, when it never closed)."""

    def __init__(self, *, starts_inside: bool) -> None:
        self._splitter = ReasoningSplitter(starts_inside=starts_inside)
        self.reasoning_tokens = 0

    def feed(self, text: str, completion_tokens: int) -> Split:
        counting = not self._splitter.reasoning_done
        split = self._splitter.feed(text)
        if counting and self._splitter.had_block:
            self.reasoning_tokens = completion_tokens
        return split

    def finish(self) -> Split:
        return self._splitter.finish()


@dataclass(frozen=True)
class ThinkingPlan:
    """How one chat request renders and reads a thinking model's block."""

    thinks: bool  # the model writes a reasoning block
    split: bool  # split the block off the answer (the format is not inline)
    enabled: bool  # thinking on for this request
    variables: dict[str, Any]  # the chat template's variables
    template_switch: bool  # the template renders thinking off itself

    def finish_prompt(self, prompt: str) -> str:
        """Thinking off for a template without a switch of its own: the prompt gets the
        empty block such templates' models answer after (closing one the template opened)."""
        if (
            not self.thinks
            or self.enabled
            or self.template_switch
            or CLOSE_TAG in prompt[-len(EMPTY_BLOCK) - 8 :]
        ):
            return prompt
        if prompt.rstrip().endswith(OPEN_TAG):
            return prompt.rstrip() + "\n\n" + CLOSE_TAG + "\n\n"
        return prompt + EMPTY_BLOCK


def model_thinks(template: TemplateThinking, model: ModelSettings) -> bool:
    """The model's settings say whether it thinks; otherwise its chat template does."""
    return template.thinks if model.thinks is None else model.thinks


def plan_thinking(
    template: TemplateThinking,
    model: ModelSettings,
    reasoning_format: ReasoningFormat,
    wanted: bool | None,
    variables: Mapping[str, Any] | None,
) -> ThinkingPlan:
    """`wanted`: the request's own on or off (None: the model's default)."""
    thinks = model_thinks(template, model)
    enabled = model.thinking if wanted is None else wanted
    rendered = dict(variables or {})
    if thinks and template.has_switch:
        rendered["enable_thinking"] = enabled  # the template renders "off" its own way
    return ThinkingPlan(
        thinks,
        thinks and reasoning_format != "inline",
        thinks and enabled,
        rendered,
        template.has_switch,
    )


def starts_inside(prompt: str) -> bool:
    """The template opened the block in the prompt: the model's output starts inside it."""
    return prompt.rstrip().endswith(OPEN_TAG)


def reasoning_fields(reasoning: str, reasoning_format: ReasoningFormat) -> dict[str, str]:
    """The message or delta fields that carry reasoning in this format."""
    if not reasoning:
        return {}
    if reasoning_format == "both":
        return {"reasoning_content": reasoning, "reasoning": reasoning}
    return {"reasoning_content": reasoning}
