"""Stopping without dropping work: what the server does between SIGTERM and its exit.

`Drain.begin` (from the signal handler) turns every new request away with a 503 while the
ones running go on; when they have all finished, or `server.shutdown_grace_s` has passed,
the engines are stopped (answers still running end with an error event, never a silent
cut) and the server is told to exit, with status 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from privserve.errors import ShuttingDown

logger = logging.getLogger(__name__)

_POLL_S = 0.05
_AFTER_STOP_S = 5.0  # how long answers ended by the engines' stop may take to be sent


class Drain:
    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.is_draining = False
        self.in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_engines: Callable[[], None] = lambda: None
        self._task: asyncio.Task[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, stop_engines: Callable[[], None]) -> None:
        """Called once the runtime is open: the loop to drain on, and how to stop engines."""
        self._loop = loop
        self._stop_engines = stop_engines

    def begin(self, then: Callable[[], None]) -> None:
        """Starts draining (safe from a signal handler); calls `then` on the loop when done."""
        if self.is_draining:
            return
        self.is_draining = True
        if self._loop is None:  # not started yet: nothing runs, nothing to wait for
            then()
            return
        self._loop.call_soon_threadsafe(self._start, then)

    def _start(self, then: Callable[[], None]) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain(then))

    async def _drain(self, then: Callable[[], None]) -> None:
        logger.info(
            "draining: %d requests running, new ones get 503 (up to %g s)",
            self.in_flight,
            self.grace_s,
        )
        try:
            if not await self._until_idle(self.grace_s):
                logger.warning("%d requests still running after the grace period", self.in_flight)
            self._stop_engines()
            await self._until_idle(_AFTER_STOP_S)
        finally:
            then()

    async def _until_idle(self, within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)
        return self.in_flight == 0


class DrainGate:
    """Counts requests in flight; while draining, answers new ones 503."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self._app = app
        self._drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if self._drain.is_draining:
            error = ShuttingDown("the server is shutting down; retry shortly")
            response = JSONResponse(
                error.to_body(), status_code=error.status, headers={"Retry-After": "1"}
            )
            await response(scope, receive, send)
            return
        self._drain.in_flight += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self._drain.in_flight -= 1
