"""Text completions: string, list and token-id prompts, echo, streaming."""

from __future__ import annotations

import openai
import pytest

from tests.integration.conftest import MODEL_ID

pytestmark = pytest.mark.model


def complete(client: openai.OpenAI, **kwargs: object) -> openai.types.Completion:
    params: dict[str, object] = {
        "model": MODEL_ID,
        "prompt": "The lighthouse keeper",
        "max_tokens": 12,
    }
    params.update(kwargs)
    return client.completions.create(**params)  # type: ignore[call-overload, no-any-return]


def test_string_prompt(client: openai.OpenAI) -> None:
    result = complete(client, temperature=0)
    assert result.object == "text_completion"
    assert result.id.startswith("cmpl-")
    [choice] = result.choices
    assert choice.text and choice.finish_reason == "length"
    assert result.usage is not None and result.usage.completion_tokens == 12


def test_default_max_tokens_is_openais_16(client: openai.OpenAI) -> None:
    result = client.completions.create(model=MODEL_ID, prompt="Once upon a time", temperature=0)
    assert result.usage is not None
    assert result.usage.completion_tokens <= 16
    if result.choices[0].finish_reason == "length":
        assert result.usage.completion_tokens == 16


def test_list_of_prompts_gives_one_choice_each_in_order(client: openai.OpenAI) -> None:
    prompts = ["The sky is", "1, 2, 3, 4,"]
    batch = complete(client, prompt=prompts, temperature=0, max_tokens=6)
    assert [c.index for c in batch.choices] == [0, 1]
    for prompt, choice in zip(prompts, batch.choices, strict=True):
        alone = complete(client, prompt=prompt, temperature=0, max_tokens=6)
        assert choice.text == alone.choices[0].text
    assert batch.usage is not None and batch.usage.completion_tokens == 12


def test_token_id_prompt_counts_exactly_those_tokens(client: openai.OpenAI) -> None:
    ids = [2, 651, 7217, 563]
    result = complete(client, prompt=ids, max_tokens=3, temperature=0)
    assert result.usage is not None and result.usage.prompt_tokens == len(ids)
    # A greedy answer here starts at a near-tie (" a" vs " the", 0.03 apart): batched with
    # another prompt it may go either way, so the nested answers are checked by their counts.
    nested = complete(client, prompt=[ids, ids[:2]], max_tokens=3, temperature=0)
    assert nested.usage is not None and nested.usage.prompt_tokens == len(ids) + 2
    assert nested.usage.completion_tokens == 6
    assert all(choice.text for choice in nested.choices)


def test_echo_prepends_the_prompt(client: openai.OpenAI) -> None:
    plain = complete(client, temperature=0)
    echoed = complete(client, temperature=0, echo=True)
    assert echoed.choices[0].text == "The lighthouse keeper" + plain.choices[0].text


def test_stop_and_n(client: openai.OpenAI) -> None:
    full = complete(client, temperature=0, max_tokens=24).choices[0].text
    stop = full[6:9]
    cut = complete(client, temperature=0, max_tokens=24, stop=stop).choices[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full[: full.index(stop)]
    two = complete(client, n=2, seed=11, temperature=1.0, max_tokens=10)
    assert [c.index for c in two.choices] == [0, 1]


def test_stream_text_equals_non_stream(client: openai.OpenAI) -> None:
    expected = complete(client, temperature=0)
    chunks = list(
        complete(client, temperature=0, stream=True, stream_options={"include_usage": True})
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == expected.choices[0].text
    assert chunks[-1].usage == expected.usage
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
