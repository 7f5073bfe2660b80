"""Annotated dependencies: what routes take from the app's state, and the key check.

All are `async def`: FastAPI runs plain functions on a worker thread, a hop per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from privserve.auth.access import KeyAccess
from privserve.auth.keys import KeyStore, parse_bearer
from privserve.errors import InvalidApiKey, PermissionDenied
from privserve.metering.meter import Meter, Ticket
from privserve.services.admin import KeyAdmin
from privserve.services.catalog import ModelCatalog
from privserve.services.chat import ChatService
from privserve.services.completions import CompletionService
from privserve.services.embeddings import EmbeddingService
from privserve.services.rerank import RerankService
from privserve.services.tokens import TokenService


async def _catalog(request: Request) -> ModelCatalog:
    catalog: ModelCatalog = request.app.state.catalog
    return catalog


async def _chat_service(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat_service
    return service


async def _completion_service(request: Request) -> CompletionService:
    service: CompletionService = request.app.state.completion_service
    return service


async def _embedding_service(request: Request) -> EmbeddingService:
    service: EmbeddingService = request.app.state.embedding_service
    return service


async def _rerank_service(request: Request) -> RerankService:
    service: RerankService = request.app.state.rerank_service
    return service


class _KeyCheck(HTTPBearer):
    """The key check, declared as the bearer scheme it reads: the OpenAPI document lists
    the scheme, and each request pays for one dependency, where a separate `HTTPBearer`
    cost it a second. The header is read by `parse_bearer`, which is more forgiving of
    spacing than FastAPI's own parser."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        key_store: KeyStore = request.app.state.key_store
        presented = parse_bearer(request.headers.get("authorization"))
        if presented is None:
            raise InvalidApiKey(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
            )
        access = await key_store.verify(presented)
        if access is None:
            raise InvalidApiKey(f"Incorrect API key provided: {presented[:6]}****.")
        if access.has_expired():
            raise InvalidApiKey(f"The API key {presented[:6]}**** has expired.")
        client = request.client.host if request.client else None
        if not access.allows_address(client):
            raise PermissionDenied(f"This API key may not be used from {client}.")
        request.state.access = access


require_api_key = _KeyCheck(
    auto_error=False,
    scheme_name="HTTPBearer",
    description="An API key: `privserve keys create`.",
)


async def _token_service(request: Request) -> TokenService:
    service: TokenService = request.app.state.token_service
    return service


async def _access(request: Request) -> KeyAccess:
    access: KeyAccess = request.state.access
    return access


async def _ticket(request: Request) -> Ticket:
    # Read from the state the key check filled, not through `Access`: a dependency more
    # costs every metered request.
    access: KeyAccess = request.state.access
    meter: Meter = request.app.state.meter
    route = request.scope.get("route")
    # Not getattr's default: that would build the request's URL on every request.
    path: str = route.path if route is not None else request.url.path
    return meter.ticket(
        access,
        path.removeprefix("/v1").lstrip("/"),
        request.state.request_id,
        request.state.response_headers,
    )


async def _key_admin(request: Request) -> KeyAdmin:
    return KeyAdmin(request.app.state.key_store, request.app.state.usage)


Catalog = Annotated[ModelCatalog, Depends(_catalog)]
Admin = Annotated[KeyAdmin, Depends(_key_admin)]
Access = Annotated[KeyAccess, Depends(_access)]
Metered = Annotated[Ticket, Depends(_ticket)]
Chat = Annotated[ChatService, Depends(_chat_service)]
Completions = Annotated[CompletionService, Depends(_completion_service)]
Embeddings = Annotated[EmbeddingService, Depends(_embedding_service)]
Rerank = Annotated[RerankService, Depends(_rerank_service)]
Tokens = Annotated[TokenService, Depends(_token_service)]
