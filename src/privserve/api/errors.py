"""The one place errors become OpenAI error bodies; FastAPI's 422 never reaches a client."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from privserve.api.disconnect import ClientDisconnected
from privserve.errors import (
    InvalidRequest,
    MethodNotAllowed,
    ModelUnavailable,
    NotFound,
    Overloaded,
    PrivserveError,
)

logger = logging.getLogger(__name__)

# pydantic names union members in error locations ("str", "list[int]", "function-after[...]");
# they are not fields, so they are left out of `param`.
_TYPE_LOC = re.compile(r"^[a-z_-]+\[.*\]$|^(str|int|float|bool|list|dict|none)$")


def error_response(
    error: PrivserveError, extra_headers: Mapping[str, str] | None = None
) -> JSONResponse:
    headers = dict(extra_headers or {})
    if isinstance(error, Overloaded | ModelUnavailable) and error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error.to_body(), status_code=error.status, headers=headers)


def param_from_loc(loc: tuple[int | str, ...]) -> str | None:
    parts = [p for p in loc[1:] if not (isinstance(p, str) and _TYPE_LOC.match(p))]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return InvalidRequest("We could not parse the JSON body of your request.")
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "missing" and len(loc) <= 1:
        return InvalidRequest("The request needs a JSON body.")
    param = param_from_loc(loc)
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    where = f"'{param}'" if param else "the request body"
    return InvalidRequest(f"Invalid value for {where}: {message}", param=param)


# The /v1 resources a client may ask for without /v1 when its base URL lacks it.
_V1_RESOURCES = {"chat", "completions", "embeddings", "models"}


def not_found(method: str, path: str) -> NotFound:
    """A 404 that says how to fix the most common wrong base URL."""
    message = f"Unknown request URL: {method} {path}"
    if path.startswith("/v1/v1/"):
        message += (
            ". The base URL ends in /v1 and the client added another: use a base URL "
            "without /v1 here (One API's 'OpenAI' channel type adds /v1 itself)."
        )
    elif not path.startswith("/v1/") and path.lstrip("/").split("/")[0] in _V1_RESOURCES:
        message += f". Did you mean /v1{path}? The base URL must end in /v1."
    return NotFound(message)


def install_error_handlers(app: FastAPI) -> None:
    async def on_privserve_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PrivserveError)
        if exc.status >= 500:
            logger.error("%s %s failed: %s", request.method, request.url.path, exc.message)
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error: PrivserveError
        if exc.status_code == 404:
            error = not_found(request.method, request.url.path)
        elif exc.status_code == 405:
            error = MethodNotAllowed(
                f"Method {request.method} is not allowed for {request.url.path}"
            )
        else:
            error = InvalidRequest(str(exc.detail))
            error.status = exc.status_code
        return error_response(error, exc.headers)  # 405 carries `Allow`

    async def on_client_gone(request: Request, exc: Exception) -> Response:
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(PrivserveError("The server had an error processing your request."))

    app.add_exception_handler(PrivserveError, on_privserve_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(ClientDisconnected, on_client_gone)
    app.add_exception_handler(Exception, on_unexpected)
