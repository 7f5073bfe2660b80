"""`privserve fastgpt-config` and `privserve oneapi-channel`: print, as JSON on stdout, what
FastGPT and One API need to use the models `privserve serve` would serve with these settings."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import typer
from rich.console import Console

from privserve.cli.keys import with_key_store
from privserve.cli.options import ConfigOption, HomeOption, settings_from
from privserve.config import DEFAULT_PORT, Settings
from privserve.errors import InvalidRequest, ModelLoadError, PrivserveError
from privserve.models.registry import (
    ChatModelFile,
    resolve_chat_models,
    resolve_embedding_model,
    resolve_rerank_model,
)
from privserve.services.catalog import cosine_rerank_id
from privserve.services.integrations import (
    ChatModelInfo,
    EmbeddingModelInfo,
    Endpoint,
    RerankModelInfo,
    ServedModels,
    fastgpt,
    one_api_channel,
    parse_aliases,
)

KEY_PLACEHOLDER = "sk-ps-REPLACE-WITH-A-PRIVSERVE-KEY"

BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="URL FastGPT / One API reach privserve at, e.g. http://privserve:6006 (/v1 "
        "optional); default: from --host/--port settings.",
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="Key to put in the entries (default: PRIVSERVE_API_KEY when set)."),
]
NewKeyOption = Annotated[
    str | None,
    typer.Option("--new-key", help="Create a key with this name and put it in the entries."),
]
AliasOption = Annotated[
    list[str] | None,
    typer.Option(
        "--alias",
        help="SERVED_ID=NAME: show a model under another name (One API maps it back); repeatable.",
    ),
]

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="A running privserve's URL: print what it really serves (its "
        "/v1/privserve/integrations, read with --key) instead of what the settings describe.",
    ),
]

ModelOption = Annotated[
    list[str] | None,
    typer.Option("--model", help="Chat models, as given to `privserve serve --model`."),
]
ModelIdOption = Annotated[
    str | None, typer.Option("--model-id", help="Id of the first model, as given to `serve`.")
]
CtxOption = Annotated[
    int | None, typer.Option("--ctx-size", help="Context length, as given to `serve`.")
]
EmbeddingOption = Annotated[
    str | None, typer.Option("--embedding-model", help="As given to `serve`.")
]
RerankOption = Annotated[str | None, typer.Option("--rerank-model", help="As given to `serve`.")]


def _thinks(settings: Settings, model: ChatModelFile) -> bool:
    """Whether `serve` would split a thinking block off this model's answers; a file that
    cannot be read here says nothing (serving it says why)."""
    from privserve.engine.base import TemplateThinking
    from privserve.services.reasoning import model_thinks

    try:
        from privserve.engine.llama.model import template_thinking

        template = template_thinking(model.path, model.chat_template)
    except (ImportError, ModelLoadError):
        template = TemplateThinking()
    return model_thinks(template, settings.model_settings(model.model_id))


def describe_settings(settings: Settings) -> ServedModels:
    """The models `serve` would offer with these settings; the embedding model is loaded to
    read its vector size and input limit."""
    from privserve.engine.embedding.model import SentenceEmbedder

    chat = [
        ChatModelInfo(m.model_id, settings.llama.n_ctx, reasoning=_thinks(settings, m))
        for m in resolve_chat_models(settings)
    ]
    embedding: list[EmbeddingModelInfo] = []
    try:
        resolved = resolve_embedding_model(settings)
        if resolved is not None:
            model = SentenceEmbedder(*resolved, shortenable=settings.embedding.shortenable)
            embedding.append(
                EmbeddingModelInfo(
                    model.model_id,
                    model.dimensions,
                    model.max_input_tokens,
                    model.shortenable,
                    query_prompt=bool(model.prompts.get("query")),
                )
            )
    except ModelLoadError:
        if "model" in settings.embedding.model_fields_set:
            raise
        # `serve` skips a missing default embedding model the same way.
    rerank = [RerankModelInfo(cosine_rerank_id(m.model_id), "cosine") for m in embedding]
    cross_encoder = resolve_rerank_model(settings)
    if cross_encoder is not None:
        rerank.insert(0, RerankModelInfo(cross_encoder[0], "cross-encoder"))
    return ServedModels(chat=chat, embedding=embedding, rerank=rerank)


def _default_base_url(settings: Settings) -> str:
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # reachable from this machine; pass --base-url for others
    port = settings.server.port or DEFAULT_PORT
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _endpoint(
    settings: Settings,
    base_url: str | None,
    key: str | None,
    new_key: str | None,
    aliases: dict[str, str],
    notes: Console,
) -> Endpoint:
    if new_key is not None:
        issued = with_key_store(settings, lambda store: store.create(new_key))
        key = issued.plaintext
        notes.print(f"Created key {new_key!r} (id {issued.row.id}) and put it in the output.")
    elif key is None and settings.api_key is not None:
        key = settings.api_key.get_secret_value()
    if key is None:
        key = KEY_PLACEHOLDER
        notes.print(
            f"No key given: replace {KEY_PLACEHOLDER} with a key from `privserve keys create`, "
            "or run again with --key KEY or --new-key NAME."
        )
    return Endpoint.parse(base_url or _default_base_url(settings), key, aliases)


def _emit(document: Any) -> None:
    # Plain JSON, unwrapped and uncoloured, so it can be piped into a file or jq.
    typer.echo(json.dumps(document, ensure_ascii=False, indent=2))


def read_server(
    server: str, base_url: str | None, key: str | None, alias: list[str] | None
) -> dict[str, Any]:
    """A running server's integrations document, read with `key`."""
    if not key:
        raise InvalidRequest("reading a running server needs a key: --key KEY", param="key")
    query = [("base_url", base_url)] if base_url else []
    query += [("alias", pair) for pair in alias or ()]
    root = server.rstrip("/").removesuffix("/v1")
    url = f"{root}/v1/privserve/integrations" + (f"?{urlencode(query)}" if query else "")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            document: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise InvalidRequest(f"{server} answered: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InvalidRequest(f"cannot reach {server}: {reason}") from None
    return document


def _run(
    build: Any,
    settings: Settings,
    base_url: str | None,
    key: str | None,
    new_key: str | None,
    alias: list[str] | None,
    server: str | None = None,
    pick: Any = None,
) -> None:
    notes = Console(stderr=True, highlight=False, soft_wrap=True)
    logging.basicConfig(level=logging.WARNING)
    if server is not None:
        try:
            if new_key is not None:
                raise InvalidRequest(
                    "--new-key makes a key in this machine's database; with --server, "
                    "pass a key of that server with --key",
                    param="new_key",
                )
            if key is None and settings.api_key is not None:
                key = settings.api_key.get_secret_value()
            document = read_server(server, base_url, key, alias)
        except PrivserveError as exc:
            notes.print(f"Error: {exc.message}", markup=False)
            raise typer.Exit(1) from None
        _emit(pick(document))
        return
    try:
        # Models and aliases first: a setting that fails must not leave a new key behind.
        models = describe_settings(settings)
        aliases = parse_aliases(alias, models)
        endpoint = _endpoint(settings, base_url, key, new_key, aliases, notes)
    except PrivserveError as exc:
        notes.print(f"Error: {exc.message}", markup=False)
        raise typer.Exit(1) from None
    _emit(build(models, endpoint))


def _settings(
    config: Path | None,
    home: Path | None,
    model: list[str] | None,
    model_id: str | None,
    ctx_size: int | None,
    embedding_model: str | None,
    rerank_model: str | None,
) -> Settings:
    return settings_from(
        config,
        home=home,
        model=model,
        model_id=model_id,
        llama__n_ctx=ctx_size,
        embedding__model=embedding_model,
        rerank__model=rerank_model,
    )


def fastgpt_config(
    server: ServerOption = None,
    base_url: BaseUrlOption = None,
    fmt: Annotated[
        Literal["config-json", "model-json"],
        typer.Option(
            "--format",
            help="config-json: llmModels/vectorModels/reRankModels for config.json; "
            "model-json: FastGPT ≥ 4.8.20's model config import, with requestUrl/requestAuth.",
        ),
    ] = "config-json",
    key: KeyOption = None,
    new_key: NewKeyOption = None,
    alias: AliasOption = None,
    model: ModelOption = None,
    model_id: ModelIdOption = None,
    ctx_size: CtxOption = None,
    embedding_model: EmbeddingOption = None,
    rerank_model: RerankOption = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Print FastGPT's model entries for the models privserve serves."""
    settings = _settings(config, home, model, model_id, ctx_size, embedding_model, rerank_model)
    part = "config_json" if fmt == "config-json" else "model_json"
    _run(
        lambda m, e: fastgpt(m, e, fmt),
        settings,
        base_url,
        key,
        new_key,
        alias,
        server,
        lambda document: document["fastgpt"][part],
    )


def oneapi_channel(
    server: ServerOption = None,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
    new_key: NewKeyOption = None,
    alias: AliasOption = None,
    model: ModelOption = None,
    model_id: ModelIdOption = None,
    ctx_size: CtxOption = None,
    embedding_model: EmbeddingOption = None,
    rerank_model: RerankOption = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Print the One API channel to create for privserve."""
    settings = _settings(config, home, model, model_id, ctx_size, embedding_model, rerank_model)
    _run(
        one_api_channel,
        settings,
        base_url,
        key,
        new_key,
        alias,
        server,
        lambda document: document["one_api"],
    )


def register(app: typer.Typer) -> None:
    app.command("fastgpt-config")(fastgpt_config)
    app.command("oneapi-channel")(oneapi_channel)
