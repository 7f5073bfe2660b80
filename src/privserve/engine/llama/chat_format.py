"""Chat formats: the Jinja template stored in a GGUF, or a known one picked by architecture.

A wrong format makes a model answer with nothing, so there is no silent fallback: a model
with neither its own template nor a known architecture loads without one, serves text
completions, and answers chat requests with a 400 that says how to give it a format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from privserve.engine.base import PromptMessage, TemplateThinking, ToolFormat
from privserve.errors import InvalidRequest, ModelLoadError

# Gemma's turn format has no system role; system text is folded into the first user turn.
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message.role == 'assistant' else 'user' }}\n"
    "{{ message.content | trim }}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@dataclass(frozen=True)
class KnownFormat:
    template: str
    has_system_role: bool


KNOWN_FORMATS: dict[str, KnownFormat] = {
    "gemma": KnownFormat(GEMMA_TEMPLATE, has_system_role=False),
}

# `general.architecture` in GGUF metadata -> known format name.
FORMAT_BY_ARCHITECTURE: dict[str, str] = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
}


class ChatFormat:
    """Renders messages into the prompt text a model was trained on."""

    def __init__(
        self,
        name: str,
        template: str,
        *,
        has_system_role: bool,
        bos_token: str,
        eos_token: str,
    ) -> None:
        self.name = name
        self.has_system_role = has_system_role
        self.bos_token = bos_token
        self._eos_token = eos_token
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_template_error
        self._template = env.from_string(template)
        self.tool_format = tool_format_of(template)
        self.thinking = thinking_of(template)

    def render(
        self,
        messages: Sequence[PromptMessage],
        tools: Sequence[dict[str, Any]] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> str:
        """`tools` reach templates with a tool format of their own, as transformers passes
        them; turns keep their calls for such templates. `variables` never replace the
        messages, tools or special tokens."""
        turns = list(messages) if self.has_system_role else fold_system_messages(messages)
        context: dict[str, Any] = dict(variables or {})
        context.update(
            messages=[_as_template_message(m) for m in turns],
            add_generation_prompt=True,
            bos_token=self.bos_token,
            eos_token=self._eos_token,
        )
        context.pop("tools", None)
        if tools and self.tool_format:
            context["tools"] = list(tools)
        return self._template.render(**context)


def thinking_of(template: str) -> TemplateThinking:
    """A template that writes, opens or strips a `<think>` block is a thinking model's."""
    return TemplateThinking(thinks="<think>" in template, has_switch="enable_thinking" in template)


def tool_format_of(template: str) -> ToolFormat | None:
    """The tool-call format a template writes calls in, when it reads `tools` at all."""
    if "tools" not in template:
        return None
    if "<tool_call>" in template:
        return "hermes"
    # Llama 3.x: calls written as `"parameters": ...`, their results in the ipython role.
    if '"parameters": ' in template and "ipython" in template:
        return "llama3-json"
    return None


def _as_template_message(message: PromptMessage) -> dict[str, Any]:
    rendered: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        rendered["tool_calls"] = list(message.tool_calls)
    if message.tool_call_id is not None:
        rendered["tool_call_id"] = message.tool_call_id
    return rendered


def fold_system_messages(messages: Sequence[PromptMessage]) -> list[PromptMessage]:
    """For formats without a system role: system text joins the next user turn, never dropped.

    Tool results become user turns, since such formats have no tool role either.
    """
    folded: list[PromptMessage] = []
    pending_system: list[str] = []
    for message in messages:
        if message.role == "system":
            pending_system.append(message.content)
            continue
        role = "user" if message.role == "tool" else message.role
        content = message.content
        if pending_system and role == "user":
            content = "\n\n".join([*pending_system, content])
            pending_system = []
        elif pending_system:
            folded.append(PromptMessage("user", "\n\n".join(pending_system)))
            pending_system = []
        folded.append(PromptMessage(role, content))
    if pending_system:
        folded.append(PromptMessage("user", "\n\n".join(pending_system)))
    return folded


def select_chat_format(
    metadata: Mapping[str, str],
    *,
    override: str | None,
    bos_token: str,
    eos_token: str,
) -> ChatFormat | None:
    """Override (known name or Jinja file) > the GGUF's own template > architecture table;
    None when there is none of them."""

    def known(name: str) -> ChatFormat:
        fmt = KNOWN_FORMATS[name]
        return ChatFormat(
            name,
            fmt.template,
            has_system_role=fmt.has_system_role,
            bos_token=bos_token,
            eos_token=eos_token,
        )

    if override:
        if override in KNOWN_FORMATS:
            return known(override)
        path = Path(override)
        if not path.is_file():
            raise ModelLoadError(
                f"chat template {override!r} is neither a known format "
                f"({', '.join(sorted(KNOWN_FORMATS))}) nor a readable Jinja file"
            )
        return ChatFormat(
            path.name,
            path.read_text(encoding="utf-8"),
            has_system_role=True,
            bos_token=bos_token,
            eos_token=eos_token,
        )
    embedded = metadata.get("tokenizer.chat_template")
    if embedded:
        return ChatFormat(
            "gguf", embedded, has_system_role=True, bos_token=bos_token, eos_token=eos_token
        )
    architecture = metadata.get("general.architecture", "")
    if architecture in FORMAT_BY_ARCHITECTURE:
        return known(FORMAT_BY_ARCHITECTURE[architecture])
    return None


def chat_format_label(metadata: Mapping[str, str]) -> str:
    """Which chat format a server would use for a GGUF with this metadata, for people."""
    if metadata.get("tokenizer.chat_template"):
        return "embedded"
    known = FORMAT_BY_ARCHITECTURE.get(metadata.get("general.architecture", ""))
    if known is not None:
        return f"{known} (by architecture)"
    return "none: completions only"


def no_chat_format(model_id: str, architecture: str) -> InvalidRequest:
    return InvalidRequest(
        f"the model {model_id!r} (architecture {architecture!r}) stores no chat template and "
        f"privserve knows none for its architecture, so it serves /v1/completions only; "
        f"start it with --chat-template (one of {', '.join(sorted(KNOWN_FORMATS))}, or a "
        f"Jinja file) to chat with it",
        param="model",
    )


def _raise_template_error(message: str) -> None:
    raise InvalidRequest(f"the model's chat template rejected the messages: {message}")
