"""`/tokenize`, `/detokenize` and `/apply-template`: the model's own tokens, in the shapes
llama.cpp's server (`content`, `add_special`, `with_pieces`) and vLLM's (`prompt`,
`messages`, `add_special_tokens`, `count`) give them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from privserve.protocol.chat import ChatMessage, Tool, plain_template_kwargs
from privserve.protocol.common import RequestModel

MAX_DETOKENIZE_TOKENS = 1 << 20


class TokenizeRequest(RequestModel):
    """Text (`content` or `prompt`) or chat `messages`, rendered with the model's template
    and its assistant turn opened, as a chat request would be."""

    model: str | None = Field(None, min_length=1)
    content: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    tools: list[Tool] | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    add_special: bool | None = None
    add_special_tokens: bool | None = None
    with_pieces: bool = False

    _plain_template_kwargs = field_validator("chat_template_kwargs")(plain_template_kwargs)

    @model_validator(mode="after")
    def _one_input(self) -> TokenizeRequest:
        given = [
            name for name in ("content", "prompt", "messages") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of content, prompt or messages")
        return self

    @property
    def text(self) -> str | None:
        return self.content if self.content is not None else self.prompt

    def adds_special(self) -> bool:
        """Whether the tokenizer adds its special tokens (BOS) to text; as in llama.cpp's
        server, not unless asked."""
        if self.add_special is not None:
            return self.add_special
        return bool(self.add_special_tokens)


class TokenPiece(BaseModel):
    id: int
    piece: str


class TokenizeResponse(BaseModel):
    model: str
    # Ids; with `with_pieces`, each id with its text, as llama.cpp's server sends them.
    tokens: list[int] | list[TokenPiece]
    count: int
    max_model_len: int


class DetokenizeRequest(RequestModel):
    model: str | None = Field(None, min_length=1)
    tokens: list[int] = Field(max_length=MAX_DETOKENIZE_TOKENS)


class DetokenizeResponse(BaseModel):
    model: str
    content: str  # llama.cpp's name
    prompt: str  # vLLM's name


class ApplyTemplateRequest(RequestModel):
    model: str | None = Field(None, min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    _plain_template_kwargs = field_validator("chat_template_kwargs")(plain_template_kwargs)


class ApplyTemplateResponse(BaseModel):
    model: str
    prompt: str
