"""The Ray Serve application: an ingress that reads each request, keys it by its prompt's
leading blocks and hands it to an engine replica through a handle whose request router
places the key; each engine replica runs privserve's own app (keys, limits, ledger,
engines) in process. Ray starts, health-checks and restarts the replicas."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, cast

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.config import RequestRouterConfig
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from privserve.api.app import create_app
from privserve.config import Settings, load_settings
from privserve.engine.llama.slots import configured_slots
from privserve.errors import BodyTooLarge, EngineError
from privserve.replicas.forwarding import ForwardedRequest, ResponseStart, replay
from privserve.replicas.metrics import merge_pages
from privserve.replicas.router import ROUTING_KEY, PrefixAffinityRouter
from privserve.replicas.routing import routing_key

# A replica's name, and its whole answer to a request every replica answers.
Answer = tuple[str, ResponseStart, bytes]
METRICS_PATH = "/metrics"
EVERY_REPLICA = re.compile(r"/admin/v1/models/.+/(load|unload)")
# Requests a replica may hold: its slots and waiting list bound them already (429 beyond).
MAX_ONGOING = 1024


class EngineReplica:
    """One replica: privserve's app with its own engines, driven without a socket."""

    # Ray Serve awaits an async constructor: the engines load before the replica serves.
    async def __init__(self, settings: Settings) -> None:  # type: ignore[misc]
        self._name = serve.get_replica_context().replica_id.unique_id
        self._app = create_app(settings)
        self._stack = AsyncExitStack()
        await self._stack.enter_async_context(self._app.router.lifespan_context(self._app))

    async def handle(
        self, request: ForwardedRequest, routing_key: str | None = None
    ) -> AsyncIterator[ResponseStart | bytes]:
        # `routing_key` is for the router; the replica needs nothing of it.
        async for part in replay(self._app, request, self._name):
            yield part

    async def answer(self, request: ForwardedRequest) -> Answer:
        """The replica's whole answer to `request`, with its name: for the requests every
        replica must answer (a metrics scrape, loading or unloading a model)."""
        start, body = ResponseStart(500), bytearray()
        async for part in replay(self._app, request, self._name):
            if isinstance(part, ResponseStart):
                start = part
            else:
                body += part
        return self._name, start, bytes(body)

    async def check_health(self) -> None:
        """Ray restarts a replica whose engine thread died."""
        failures = self._app.state.catalog.engine_failures()
        if failures:
            raise RuntimeError("; ".join(f"{m}: {reason}" for m, reason in failures.items()))

    async def __del__(self) -> None:
        await self._stack.aclose()


class Ingress:
    """Reads the body (bounded as the server bounds it), keys it, forwards it, and streams
    the replica's answer back as it comes."""

    def __init__(self, engines: DeploymentHandle[Any], settings: Settings) -> None:
        self._replicas = engines
        self._engines = engines.options(stream=True)
        self._max_body = settings.server.max_body_bytes
        self._prefix_chars = settings.ray.prefix_chars

    async def __call__(self, request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self._max_body:
                error = BodyTooLarge(f"the request body is over {self._max_body} bytes")
                return JSONResponse(error.to_body(), status_code=error.status)
        client = (request.client.host, request.client.port) if request.client else None
        forwarded = ForwardedRequest(
            method=request.method,
            path=request.url.path,
            query_string=request.url.query.encode(),
            headers=list(request.headers.raw),
            body=bytes(body),
            client=client,
        )
        if forwarded.method == "GET" and forwarded.path == METRICS_PATH:
            return await self._metrics(forwarded)
        if forwarded.method == "POST" and EVERY_REPLICA.fullmatch(forwarded.path):
            return await self._on_every_replica(forwarded)
        key = routing_key(forwarded.path, forwarded.body, self._prefix_chars)
        parts, start = await self._start(forwarded, key)

        async def rest() -> AsyncIterator[bytes]:
            finished = False
            try:
                async for part in parts:
                    if isinstance(part, bytes):
                        yield part
                finished = True
            finally:
                if not finished:  # the client left: the replica stops the work
                    parts.cancel()  # type: ignore[no-untyped-call]

        response = StreamingResponse(rest(), status_code=start.status)
        # Ray's proxy gave the request an x-request-id, which the app took as its own, and
        # adds it to the response itself: once is enough.
        given = request.headers.get("x-request-id", "").encode("latin-1")
        response.raw_headers = [
            (name, value)
            for name, value in start.headers
            if not (name.lower() == b"x-request-id" and value == given)
        ]
        return response

    async def _broadcast(self, forwarded: ForwardedRequest) -> list[Answer]:
        """Every live replica's answer; one that died since is left out (Ray replaces it)."""
        answers = await self._replicas.broadcast("answer", forwarded).results_async(
            return_exceptions=True
        )
        return [answer for answer in answers if not isinstance(answer, BaseException)]

    async def _metrics(self, forwarded: ForwardedRequest) -> Response:
        """Every live replica's page, as one: each sample labelled with its replica."""
        answers = await self._broadcast(forwarded)
        for _, start, body in answers:
            if start.status != 200:  # refused (an admin key is needed): the same for all
                return _whole(start, body)
        pages = {name: body.decode() for name, _, body in answers}
        return Response(merge_pages(pages), media_type=CONTENT_TYPE_LATEST)

    async def _on_every_replica(self, forwarded: ForwardedRequest) -> Response:
        """A model loaded or unloaded by hand is loaded or unloaded on every replica: the
        answer is the first refusal, else the first replica's."""
        answers = await self._broadcast(forwarded)
        if not answers:
            error = EngineError("no replica is running; Ray is starting them")
            return JSONResponse(error.to_body(), status_code=503)
        for _, start, body in answers:
            if start.status >= 400:
                return _whole(start, body)
        _, start, body = answers[0]
        return _whole(start, body)

    async def _start(
        self, forwarded: ForwardedRequest, key: str | None
    ) -> tuple[DeploymentResponseGenerator[ResponseStart | bytes], ResponseStart]:
        """The replica's answer and its status. A replica that died before answering (killed,
        out of memory) had not started the request: it goes once more to another."""
        for attempt in range(2):
            parts = cast(
                DeploymentResponseGenerator[ResponseStart | bytes],
                self._engines.handle.remote(forwarded, **{ROUTING_KEY: key}),
            )
            try:
                start = await parts.__anext__()
            except (RayActorError, ActorUnavailableError):
                if attempt:
                    raise
                continue
            assert isinstance(start, ResponseStart)
            return parts, start
        raise AssertionError("unreachable")


def _whole(start: ResponseStart, body: bytes) -> Response:
    response = Response(body, status_code=start.status)
    response.raw_headers = start.headers
    return response


def application(settings: Settings) -> serve.Application:
    """The app `serve.run` starts: N engine replicas behind one ingress."""
    ray = settings.ray
    replica_settings = _per_replica(settings)
    router = (
        RequestRouterConfig(
            # A class or its import path, whatever pydantic's view of the field says.
            request_router_class=PrefixAffinityRouter,  # type: ignore[arg-type]
            request_router_kwargs={
                "bound": ray.load_bound,
                "slots": configured_slots(replica_settings.llama),
            },
        )
        if ray.router == "prefix"
        else RequestRouterConfig()
    )
    engines = serve.deployment(
        name="privserve-engines",
        num_replicas=ray.count,
        max_ongoing_requests=MAX_ONGOING,
        ray_actor_options={"num_cpus": ray.replica_cpus, "num_gpus": ray.replica_gpus},
        request_router_config=router,
        health_check_period_s=5,
        graceful_shutdown_timeout_s=settings.server.shutdown_grace_s,
    )(EngineReplica).bind(replica_settings)
    ingress = serve.deployment(
        name="privserve",
        max_ongoing_requests=MAX_ONGOING * ray.count,
        ray_actor_options={"num_cpus": 0},
    )(Ingress)
    return ingress.bind(engines, settings)


def build(args: dict[str, Any]) -> serve.Application:
    """The application for a Serve config file (`import_path:
    privserve.replicas.deployments:build`, as KubeRay's RayService runs it): settings from
    the environment and the config file PRIVSERVE_CONFIG names, then `args` as
    `section__field` overrides, as the CLI's flags (`{"ray__replicas": 4}`)."""
    overrides: dict[str, Any] = {}
    for name, value in args.items():
        section, _, field = name.partition("__")
        if field:
            overrides.setdefault(section, {})[field] = value
        else:
            overrides[name] = value
    config = os.environ.get("PRIVSERVE_CONFIG")
    return application(load_settings(Path(config) if config else None, **overrides))


def _per_replica(settings: Settings) -> Settings:
    """A replica's settings: its engine threads are the CPUs Ray reserves for it (the
    replicas of one machine would otherwise each take every core)."""
    if settings.llama.n_threads is not None or settings.ray.replica_cpus < 1:
        return settings
    llama = settings.llama.model_copy(update={"n_threads": int(settings.ray.replica_cpus)})
    return settings.model_copy(update={"llama": llama})
