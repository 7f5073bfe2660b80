"""Server-sent events as OpenAI frames them: `data: {json}` events, then `data: [DONE]`."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel
from starlette.responses import StreamingResponse

from privserve.errors import PrivserveError

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(payload: BaseModel | dict[str, object]) -> bytes:
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json()
    else:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"data: {body}\n\n".encode()


async def sse_frames(events: AsyncIterator[BaseModel]) -> AsyncIterator[bytes]:
    """Frames each event; an error after the stream started becomes one error event."""
    try:
        async for event in events:
            yield sse_event(event)
    except PrivserveError as exc:
        yield sse_event(exc.to_body())
        return
    except Exception:
        logger.exception("stream failed")
        yield sse_event(PrivserveError("The server had an error while streaming.").to_body())
        return
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    yield DONE


def sse_response(events: AsyncIterator[BaseModel]) -> StreamingResponse:
    return StreamingResponse(
        sse_frames(events), media_type="text/event-stream", headers=SSE_HEADERS
    )
