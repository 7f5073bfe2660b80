"""The model's own tokens: text or a chat to token ids and back, and the rendered prompt.

Gateways and FastGPT count tokens with other tokenizers; these answers are what the model
reads and what the ledger charges."""

from __future__ import annotations

import functools

import anyio

from privserve.engine.base import TextEngine
from privserve.errors import ModelNotFound
from privserve.protocol.chat import ChatCompletionRequest
from privserve.protocol.tokens import (
    ApplyTemplateRequest,
    ApplyTemplateResponse,
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
    TokenPiece,
)
from privserve.services.catalog import ModelCatalog
from privserve.services.chat import ChatService
from privserve.services.generation import check_token_ids


class TokenService:
    def __init__(self, catalog: ModelCatalog, chat: ChatService) -> None:
        self._catalog = catalog
        self._chat = chat

    def model_id(self, requested: str | None) -> str:
        """The model asked for, or the first chat model when none is named."""
        if requested is not None:
            return requested
        served = self._catalog.model_ids()
        if not served:
            raise ModelNotFound("this server has no chat or completion model", param="model")
        return served[0]

    async def tokenize(self, request: TokenizeRequest, model_id: str) -> TokenizeResponse:
        async with self._catalog.using(model_id) as engine:
            return await self._tokenize(engine, request, model_id)

    async def _tokenize(
        self, engine: TextEngine, request: TokenizeRequest, model_id: str
    ) -> TokenizeResponse:
        if request.messages is not None:
            text = self._chat_prompt(engine, model_id, request)
            tokenize = functools.partial(engine.tokenize, text, is_chat=True)
        else:
            text = request.text or ""
            tokenize = functools.partial(
                engine.tokenize, text, is_chat=False, add_special=request.adds_special()
            )
        ids = await anyio.to_thread.run_sync(tokenize)
        tokens: list[int] | list[TokenPiece] = ids
        if request.with_pieces:
            tokens = await anyio.to_thread.run_sync(_pieces, engine, ids)
        return TokenizeResponse(
            model=model_id, tokens=tokens, count=len(ids), max_model_len=engine.context_length
        )

    async def detokenize(self, request: DetokenizeRequest, model_id: str) -> DetokenizeResponse:
        async with self._catalog.using(model_id) as engine:
            check_token_ids(engine.vocab_size, request.tokens, "tokens")
            text = await anyio.to_thread.run_sync(engine.detokenize, request.tokens)
        return DetokenizeResponse(model=model_id, content=text, prompt=text)

    async def apply_template(
        self, request: ApplyTemplateRequest, model_id: str
    ) -> ApplyTemplateResponse:
        async with self._catalog.using(model_id) as engine:
            prompt = self._chat_prompt(engine, model_id, request)
        return ApplyTemplateResponse(model=model_id, prompt=prompt)

    def _chat_prompt(
        self, engine: TextEngine, model_id: str, request: TokenizeRequest | ApplyTemplateRequest
    ) -> str:
        chat = ChatCompletionRequest(
            model=model_id,
            messages=request.messages or [],
            tools=request.tools,
            chat_template_kwargs=request.chat_template_kwargs,
        )
        return self._chat.render(engine, chat).text


def _pieces(engine: TextEngine, ids: list[int]) -> list[TokenPiece]:
    return [TokenPiece(id=token, piece=engine.detokenize([token])) for token in ids]
