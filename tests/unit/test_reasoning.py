"""Thinking models: the `<think>` block split off the answer, whole and streamed, thinking
turned off the template's way, and the reasoning tokens counted (on a fake engine)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from privserve.api.app import create_app
from privserve.config import Settings
from privserve.engine.base import TemplateThinking, ThinkingControl
from privserve.engine.llama.sequence import ThinkingBlock
from privserve.services.reasoning import (
    EMPTY_BLOCK,
    ReasoningSplitter,
    Split,
    split_reasoning,
)
from tests.unit.fake_engine import FakeEngine

KEY = "unit-test-key"
HI = [{"role": "user", "content": "hi there"}]
# Six tokens: the block (three of them) closes with the third, the answer is the rest.
THOUGHT = ["<think>", "\nlet me see", "\n</think>", "\n\n", "Hello", "!"]


@pytest.mark.parametrize(
    ("text", "inside", "reasoning", "content"),
    [
        ("<think>\nhmm</think>\n\nAnswer.", False, "\nhmm", "Answer."),
        ("  <think>a</think>b", False, "a", "b"),
        ("Plain <think>x</think>", False, "", "Plain <think>x</think>"),
        ("reason</think>\n\nans", True, "reason", "ans"),
        ("cut short <thi", True, "cut short <thi", ""),
        ("<thi", False, "", "<thi"),
        ("<think></think>", False, "", ""),
    ],
)
def test_the_block_is_split_however_the_text_is_cut(
    text: str, inside: bool, reasoning: str, content: str
) -> None:
    assert split_reasoning(text, starts_inside=inside) == Split(reasoning, content)
    for seed in range(50):
        rng = random.Random(seed)
        splitter, out, i = ReasoningSplitter(starts_inside=inside), Split(), 0
        while i < len(text):
            step = rng.randint(1, 4)
            out = out + splitter.feed(text[i : i + step])
            i += step
        assert out + splitter.finish() == Split(reasoning, content)


def test_a_tag_split_across_pieces_is_never_sent_half_as_reasoning() -> None:
    splitter = ReasoningSplitter(starts_inside=True)
    assert splitter.feed("thinking </th") == Split(reasoning="thinking ")
    assert splitter.feed("ink>answer") == Split(content="answer")


def thinking_api(tmp_path: Path, engine: FakeEngine, **settings: object) -> TestClient:
    config = Settings(home=tmp_path, api_key=KEY, **settings)  # type: ignore[arg-type]
    app = create_app(config, text_engines={"fake": engine})
    return TestClient(app, headers={"Authorization": f"Bearer {KEY}"})


@pytest.fixture
def engine() -> FakeEngine:
    engine = FakeEngine(THOUGHT)
    engine.template_thinking = TemplateThinking(thinks=True, has_switch=True)
    return engine


@pytest.fixture
def api(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    with thinking_api(tmp_path, engine) as client:
        yield client


def chat(api: TestClient, **body: object) -> dict[str, object]:
    response = api.post("/v1/chat/completions", json={"model": "fake", "messages": HI, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def stream_deltas(api: TestClient, **body: object) -> list[dict[str, object]]:
    response = api.post(
        "/v1/chat/completions",
        json={"model": "fake", "messages": HI, "stream": True, **body},
    )
    assert response.status_code == 200, response.text
    frames = [f.removeprefix("data: ") for f in response.text.split("\n\n") if f]
    assert frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames[:-1]]


def test_the_reasoning_comes_apart_from_the_answer(api: TestClient) -> None:
    body = chat(api)
    message = body["choices"][0]["message"]  # type: ignore[index]
    assert message["reasoning_content"] == "\nlet me see\n"
    assert message["content"] == "Hello!"
    assert "reasoning" not in message
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}  # type: ignore[index]


def test_streamed_reasoning_comes_in_deltas_before_the_answer(api: TestClient) -> None:
    chunks = stream_deltas(api, stream_options={"include_usage": True})
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]  # type: ignore[index]
    reasoning = [d["reasoning_content"] for d in deltas if "reasoning_content" in d]
    content = [d["content"] for d in deltas if d.get("content")]
    assert "".join(reasoning) == "\nlet me see\n"
    assert "".join(content) == "Hello!"
    # The reasoning came as it was made, not held to the end of the block.
    assert len(reasoning) >= 2
    first_answer = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all("reasoning_content" not in d for d in deltas[first_answer:])
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}  # type: ignore[index]


def test_both_sends_the_reasoning_in_both_fields(tmp_path: Path, engine: FakeEngine) -> None:
    with thinking_api(tmp_path, engine, reasoning_format="both") as api:
        message = chat(api)["choices"][0]["message"]  # type: ignore[index]
    assert message["reasoning"] == message["reasoning_content"] == "\nlet me see\n"


def test_inline_leaves_the_block_in_the_content(tmp_path: Path, engine: FakeEngine) -> None:
    with thinking_api(tmp_path, engine, reasoning_format="inline") as api:
        body = chat(api)
    message = body["choices"][0]["message"]  # type: ignore[index]
    assert message["content"] == "".join(THOUGHT)
    assert "reasoning_content" not in message
    assert "completion_tokens_details" not in body["usage"]  # type: ignore[operator]


def test_a_model_that_does_not_think_is_left_alone(tmp_path: Path) -> None:
    engine = FakeEngine(THOUGHT)  # its template says nothing of thinking
    with thinking_api(tmp_path, engine) as api:
        body = chat(api)
    assert body["choices"][0]["message"]["content"] == "".join(THOUGHT)  # type: ignore[index]
    assert "completion_tokens_details" not in body["usage"]  # type: ignore[operator]


@pytest.mark.parametrize(
    "off",
    [
        {"chat_template_kwargs": {"enable_thinking": False}},
        {"enable_thinking": False},
        {"reasoning_effort": "none"},
    ],
)
def test_thinking_off_reaches_a_template_with_a_switch(
    api: TestClient, engine: FakeEngine, off: dict[str, object]
) -> None:
    chat(api, **off)
    assert engine.variables["enable_thinking"] is False
    assert not engine.prompts[-1].endswith(EMPTY_BLOCK)  # the template renders it
    chat(api)
    assert engine.variables["enable_thinking"] is True


def test_thinking_off_without_a_switch_answers_after_an_empty_block(
    tmp_path: Path, engine: FakeEngine
) -> None:
    engine.template_thinking = TemplateThinking(thinks=True, has_switch=False)
    with thinking_api(tmp_path, engine) as api:
        chat(api, reasoning_effort="none")
        assert engine.prompts[-1].endswith(EMPTY_BLOCK)
        assert "enable_thinking" not in engine.variables
        engine.generation_prompt = "<think>\n"  # an R1-style template opens the block
        chat(api, reasoning_effort="none")
        assert engine.prompts[-1].endswith("<think>\n\n</think>\n\n")
        assert engine.prompts[-1].count("<think>") == 1


def test_a_prompt_that_opens_the_block_starts_the_answer_inside_it(
    tmp_path: Path, engine: FakeEngine
) -> None:
    engine.words = ["weighing", " it", "</think>", "\n\n", "Yes."]
    engine.generation_prompt = "<think>\n"
    with thinking_api(tmp_path, engine) as api:
        message = chat(api)["choices"][0]["message"]  # type: ignore[index]
    assert message["reasoning_content"] == "weighing it"
    assert message["content"] == "Yes."


def test_a_model_setting_turns_thinking_off_by_default(tmp_path: Path, engine: FakeEngine) -> None:
    with thinking_api(tmp_path, engine, models={"fake": {"thinking": False}}) as api:
        chat(api)
        assert engine.variables["enable_thinking"] is False
        chat(api, enable_thinking=True)
        assert engine.variables["enable_thinking"] is True


def test_earlier_reasoning_is_not_fed_back(api: TestClient, engine: FakeEngine) -> None:
    history = [
        *HI,
        {"role": "assistant", "content": "<think>old thoughts</think>\n\nEarlier answer."},
        {"role": "user", "content": "and now?"},
    ]
    chat(api, messages=history)
    assert "old thoughts" not in engine.prompts[-1]
    assert "Earlier answer." in engine.prompts[-1]


def test_template_kwargs_never_replace_the_messages(api: TestClient, engine: FakeEngine) -> None:
    chat(api, chat_template_kwargs={"messages": "x", "custom_flag": True})
    assert engine.variables["custom_flag"] is True
    response = api.post(
        "/v1/chat/completions",
        json={"model": "fake", "messages": HI, "chat_template_kwargs": {"nested": {"a": 1}}},
    )
    assert response.status_code == 400


def block(budget: int | None = None, *, inside: bool = False) -> ThinkingBlock:
    control = ThinkingControl("<think>", "</think>", (7, 8), inside, budget)
    return ThinkingBlock(control)


def test_the_engine_finds_the_block_end_even_when_the_tag_is_split() -> None:
    thinking = block()
    assert [thinking.feed(t) for t in ["<thi", "nk>", "hmm </", "think>", "Yes"]] == [
        False,
        False,
        False,
        True,
        False,
    ]
    assert thinking.tokens == 4  # counted up to the token that closed the block


def test_an_answer_without_a_block_ends_the_watch_at_once() -> None:
    thinking = block(budget=3)
    assert thinking.feed("Plain answer")
    assert not thinking.over_budget()


@pytest.mark.parametrize(("budget", "due_after"), [(5, 3), (2, 0), (0, 0)])
def test_the_closing_tag_is_due_so_the_block_ends_at_its_budget(
    budget: int, due_after: int
) -> None:
    thinking = block(budget, inside=True)
    fed = 0
    while not thinking.over_budget():
        thinking.feed("word ")
        fed += 1
    # The tag's two tokens then make the block exactly `budget` long (or as short as it can).
    assert fed == due_after
