"""The one exception hierarchy; each class carries the fields of an OpenAI error body.

    PrivserveError                  500 server_error
    ├── InvalidRequest              400 invalid_request_error
    │   ├── ContextLengthExceeded   400 code=context_length_exceeded
    │   ├── UnsupportedInput        400 code=unsupported_input
    │   ├── ModelNotFound           404 code=model_not_found
    │   ├── NotFound                404 code=not_found
    │   ├── MethodNotAllowed        405 code=method_not_allowed
    │   ├── BodyTimedOut            408 code=request_timeout
    │   ├── BodyTooLarge            413 code=request_too_large
    │   ├── InvalidApiKey           401 code=invalid_api_key
    │   └── PermissionDenied        403 code=permission_denied
    ├── Overloaded                  429 code=server_busy (sent with Retry-After)
    │   ├── RateLimited             429 code=rate_limit_exceeded (a key's rpm, tpm, concurrency)
    │   └── InsufficientQuota       429 code=insufficient_quota (a key's token quota)
    ├── RequestTimedOut             504 code=timeout
    ├── ShuttingDown                503 code=shutting_down (draining after SIGTERM)
    └── EngineError                 500 code=engine_error

Nothing here imports FastAPI: engines and services raise these, `api.errors` maps them.
"""

from __future__ import annotations

import math


class PrivserveError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def to_body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(PrivserveError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class UnsupportedInput(InvalidRequest):
    code = "unsupported_input"


class ModelNotFound(InvalidRequest):
    status = 404
    code = "model_not_found"


class NotFound(InvalidRequest):
    status = 404
    code = "not_found"


class MethodNotAllowed(InvalidRequest):
    status = 405
    code = "method_not_allowed"


class BodyTimedOut(InvalidRequest):
    """The request body did not arrive within `server.body_timeout_s`."""

    status = 408
    code = "request_timeout"


class BodyTooLarge(InvalidRequest):
    """The request body is larger than `server.max_body_bytes`; refused before parsing."""

    status = 413
    code = "request_too_large"


class InvalidApiKey(InvalidRequest):
    status = 401
    code = "invalid_api_key"


class PermissionDenied(InvalidRequest):
    """A valid key used where it may not be: from a network it is not allowed, or for an
    admin operation by an ordinary key."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class Overloaded(PrivserveError):
    status = 429
    type = "rate_limit_error"
    code = "server_busy"

    def __init__(self, message: str, *, retry_after_s: int | None = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # None: waiting will not help


class RateLimited(Overloaded):
    """A key over its requests or tokens per minute, or its concurrent requests. `kind`
    is OpenAI's error type for it: `requests` or `tokens`."""

    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, kind: str, retry_after_s: float) -> None:
        super().__init__(message, retry_after_s=max(math.ceil(retry_after_s), 1))
        self.type = kind


class InsufficientQuota(Overloaded):
    """A key whose token quota cannot cover the request; it resets with its period."""

    type = "insufficient_quota"
    code = "insufficient_quota"


class RequestTimedOut(PrivserveError):
    """A request outlived `server.request_timeout_s`; its work in the engine is freed."""

    status = 504
    code = "timeout"


class ShuttingDown(PrivserveError):
    """The server is draining: running requests finish, new ones go elsewhere."""

    status = 503
    code = "shutting_down"


class EngineError(PrivserveError):
    code = "engine_error"


class StorageUnavailable(PrivserveError):
    """The database or the rate-limit storage cannot be reached; raised at start-up."""

    status = 503
    code = "storage_unavailable"


class ModelUnavailable(PrivserveError):
    """An offered model that cannot serve this request: its load failed, or it does not
    fit beside the loaded models that are busy. Other models keep serving."""

    status = 503
    code = "model_unavailable"

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message, param="model")
        self.retry_after_s = retry_after_s


class ModelLoadError(PrivserveError):
    """A model file or its chat format cannot be used; raised at start-up, not per request."""

    code = "model_load_error"


class ConversionError(PrivserveError):
    """A checkpoint that cannot be converted: missing files, an unknown architecture, no
    disk, or the converter failing. Its message says what to do."""
