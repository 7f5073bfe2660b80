"""Chat formats: explicit choice, system messages folded, never a silent fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from privserve.engine.base import PromptMessage
from privserve.engine.llama.chat_format import fold_system_messages, select_chat_format
from privserve.errors import ModelLoadError


def fmt(metadata: dict[str, str], override: str | None = None):  # type: ignore[no-untyped-def]
    return select_chat_format(metadata, override=override, bos_token="<bos>", eos_token="<eos>")


def test_gemma_is_picked_by_architecture_and_folds_the_system_message() -> None:
    chat = fmt({"general.architecture": "gemma3"})
    text = chat.render(
        [
            PromptMessage("system", "Be brief."),
            PromptMessage("user", "Hi"),
            PromptMessage("assistant", "Hello"),
            PromptMessage("user", "Bye"),
        ]
    )
    assert text == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_template_stored_in_the_gguf_wins_over_the_architecture() -> None:
    stored = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}<go>"
    chat = fmt({"general.architecture": "gemma3", "tokenizer.chat_template": stored})
    assert chat.render([PromptMessage("system", "S"), PromptMessage("user", "U")]) == (
        "[system]S[user]U<go>"
    )


def test_unknown_architecture_without_template_has_no_format_rather_than_a_guess() -> None:
    assert fmt({"general.architecture": "llama"}) is None


def test_override_by_name_or_file(tmp_path: Path) -> None:
    assert fmt({"general.architecture": "llama"}, override="gemma").name == "gemma"
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages[0].content }}!")
    assert fmt({}, override=str(template)).render([PromptMessage("user", "x")]) == "x!"
    with pytest.raises(ModelLoadError):
        fmt({}, override=str(tmp_path / "missing.jinja"))


def test_folding_never_drops_a_system_message() -> None:
    folded = fold_system_messages(
        [
            PromptMessage("system", "A"),
            PromptMessage("assistant", "B"),
            PromptMessage("system", "C"),
            PromptMessage("tool", "D"),
            PromptMessage("system", "E"),
        ]
    )
    assert folded == [
        PromptMessage("user", "A"),
        PromptMessage("assistant", "B"),
        PromptMessage("user", "C\n\nD"),
        PromptMessage("user", "E"),
    ]


HERMES = Path(__file__).parents[1] / "data" / "hermes_tools.jinja"
LLAMA3 = Path(__file__).parents[1] / "data" / "llama3_tools.jinja"


def test_a_templates_tool_format_is_read_from_how_it_writes_calls() -> None:
    assert fmt({}, override=str(HERMES)).tool_format == "hermes"
    assert fmt({}, override=str(LLAMA3)).tool_format == "llama3-json"
    assert fmt({"general.architecture": "gemma"}, override=None).tool_format is None


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def render_call_and_result(template: Path) -> str:
    """A call to `f` and its result "done", rendered with `f` offered."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
    return fmt({}, override=str(template)).render(
        [
            PromptMessage("user", "Go"),
            PromptMessage("assistant", "", (call,)),
            PromptMessage("tool", "done", tool_call_id="c1"),
        ],
        [TOOL],
    )


def test_tools_and_calls_reach_a_template_with_a_tool_format() -> None:
    prompt = render_call_and_result(HERMES)
    assert '<tools>\n{"name": "f", "parameters": {"type": "object"}}\n</tools>' in prompt
    assert '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>' in prompt
    assert "<tool_response>\ndone\n</tool_response>" in prompt
    assert "<tools>" not in fmt({}, override=str(HERMES)).render([PromptMessage("user", "Go")])


def test_a_llama3_template_writes_one_bare_call_and_its_result() -> None:
    prompt = render_call_and_result(LLAMA3)
    assert '{"name": "f", "parameters": {"a": 1}}<|eom_id|>' in prompt
    assert "<|start_header_id|>ipython<|end_header_id|>\n\ndone<|eot_id|>" in prompt
    alone = fmt({}, override=str(LLAMA3)).render([PromptMessage("user", "Go")])
    assert '"name": "f"' not in alone
