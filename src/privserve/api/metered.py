"""Every model request runs on a ticket: its key's limits checked as it starts, its row on the
ledger written however it ends; and every response says its request id and, for keys with
limits, OpenAI's `x-ratelimit-*` headers."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from privserve.api.disconnect import ClientDisconnected
from privserve.auth.access import KeyAccess
from privserve.errors import ModelNotFound
from privserve.metering.meter import CLIENT_GONE, Ticket, status_of

# A client's own id is kept when it is short and plain (vLLM and proxies send one).
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class ResponseHeaders:
    """Gives each request an id (`x-request-id`, the client's if it sent a plain one) and a
    dict on `request.state.response_headers` whose entries every response carries, errors
    and streams included."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _CLIENT_ID.match(sent) else f"req_{uuid.uuid4().hex}"
        extra: dict[str, str] = {}
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["response_headers"] = extra

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items())
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, send_with_headers)


def require_model(access: KeyAccess, model_id: str) -> None:
    """A model outside the key's list does not exist, as far as the key can tell."""
    if not access.allows_model(model_id):
        raise ModelNotFound(
            f"The model `{model_id}` does not exist or you do not have access to it.",
            param="model",
        )


@asynccontextmanager
async def metered(ticket: Ticket, model: str, *, streaming: bool = False) -> AsyncIterator[None]:
    """Starts `ticket` for `model` (the key may use it, within its limits), and closes it
    when the block fails, or when it ends unless a stream took the ticket over."""
    try:
        require_model(ticket.access, model)
        await ticket.start(model)
        yield
    except BaseException as exc:
        status = CLIENT_GONE if isinstance(exc, ClientDisconnected) else status_of(exc)
        await ticket.close_after_error(status)
        raise
    if not streaming:
        await ticket.close(200)
