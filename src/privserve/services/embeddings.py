"""Embeddings: wire inputs (text or token ids) -> the batched model -> vectors on the wire."""

from __future__ import annotations

import base64
from typing import cast

import numpy as np
import numpy.typing as npt

from privserve.config import EmbeddingConfig
from privserve.engine.base import EmbeddingEngine
from privserve.errors import ContextLengthExceeded, InvalidRequest
from privserve.metering.meter import Ticket
from privserve.protocol.embeddings import (
    QUERY_INPUT_TYPES,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)
from privserve.services.catalog import ModelCatalog
from privserve.services.generation import check_token_ids


def as_base64(vector: npt.NDArray[np.float32]) -> str:
    """Little-endian float32 bytes, base64: what the `openai` client decodes."""
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


def instruction(engine: EmbeddingEngine, request: EmbeddingRequest) -> str:
    """The text the model reads before each input: the prompt asked for by name, the one
    for the input's side of a search, or the model's default; empty for most models."""
    prompts = engine.prompts
    if request.prompt_name is not None:
        if request.input_type is not None:
            raise InvalidRequest(
                "give either input_type or prompt_name, not both", param="prompt_name"
            )
        if request.prompt_name not in prompts:
            known = ", ".join(sorted(prompts)) or "none"
            raise InvalidRequest(
                f"{engine.model_id} has no prompt named {request.prompt_name!r} "
                f"(its prompts: {known})",
                param="prompt_name",
            )
        return prompts[request.prompt_name]
    if request.input_type in QUERY_INPUT_TYPES:
        return prompts.get("query", "")
    if request.input_type is not None:
        return prompts.get("document", prompts.get("passage", ""))
    default = engine.default_prompt_name
    return prompts.get(default, "") if default is not None else ""


def with_instruction(prefix: str, texts: list[str]) -> list[str]:
    """`prefix` before each text that does not already start with it: clients that follow
    a model card write the instruction themselves."""
    if not prefix:
        return texts
    return [t if t.startswith(prefix) else prefix + t for t in texts]


def shortened(vectors: npt.NDArray[np.float32], dimensions: int) -> npt.NDArray[np.float32]:
    """The leading `dimensions` of each normalized vector, normalized again (Matryoshka)."""
    if dimensions == vectors.shape[1]:
        return vectors
    head = vectors[:, :dimensions]
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    result: npt.NDArray[np.float32] = (head / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


class EmbeddingService:
    def __init__(self, catalog: ModelCatalog, config: EmbeddingConfig) -> None:
        self._catalog = catalog
        self._config = config

    async def create(self, request: EmbeddingRequest, ticket: Ticket) -> EmbeddingResponse:
        async with self._catalog.using_embedder(request.model) as engine:
            return await self._create(engine, request, ticket)

    async def _create(
        self, engine: EmbeddingEngine, request: EmbeddingRequest, ticket: Ticket
    ) -> EmbeddingResponse:
        texts = with_instruction(instruction(engine, request), self._texts(engine, request))
        dimensions = self._dimensions(engine, request.dimensions)
        counts = await engine.count_tokens(texts)
        limit = engine.max_input_tokens
        for i, count in enumerate(counts):
            if count > limit and not self._config.truncate:
                raise ContextLengthExceeded(
                    f"This model's maximum input length is {limit} tokens, but input {i} has "
                    f"{count} tokens. Shorten it, or start the server with "
                    "PRIVSERVE_EMBEDDING__TRUNCATE=true to cut long inputs.",
                    param="input" if isinstance(request.input, str) else f"input[{i}]",
                )
        tokens = sum(min(count, limit) for count in counts)
        await ticket.admit(tokens, tokens)
        vectors = shortened(await engine.embed(texts, priority=ticket.priority), dimensions)
        await ticket.settle(completion_tokens=0)
        return EmbeddingResponse(
            data=[
                Embedding(
                    index=i,
                    embedding=as_base64(v) if request.encoding_format == "base64" else v.tolist(),
                )
                for i, v in enumerate(vectors)
            ],
            model=engine.model_id,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )

    @staticmethod
    def _dimensions(engine: EmbeddingEngine, asked: int | None) -> int:
        native = engine.dimensions
        if asked is None or asked == native:
            return native
        if not engine.shortenable:
            raise InvalidRequest(
                f"{engine.model_id} does not support shortening its vectors; it gives "
                f"{native} dimensions (leave 'dimensions' out or send that number)",
                param="dimensions",
            )
        if asked > native:
            raise InvalidRequest(
                f"{engine.model_id} gives at most {native} dimensions; got {asked}",
                param="dimensions",
            )
        return asked

    def _texts(self, engine: EmbeddingEngine, request: EmbeddingRequest) -> list[str]:
        raw = request.input
        if isinstance(raw, str):
            return [raw]
        if all(isinstance(v, int) for v in raw):
            raw = [cast(list[int], raw)]
        items = cast(list[str | list[int]], raw)
        if len(items) > self._config.max_inputs:
            raise InvalidRequest(
                f"at most {self._config.max_inputs} inputs per request; got {len(items)}",
                param="input",
            )
        texts = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                texts.append(item)
                continue
            check_token_ids(engine.vocab_size, item, param=f"input[{i}]")
            texts.append(engine.detokenize(item))
        return texts
