"""`privserve fastgpt-config` and `privserve oneapi-channel`: print, as JSON on stdout, what
FastGPT and One API need to use the models `privserve serve` would serve with these settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from privserve.cli.keys import with_key_store
from privserve.cli.options import ConfigOption, HomeOption, settings_from
from privserve.config import DEFAULT_PORT, Settings
from privserve.errors import InvalidRequest, ModelLoadError, PrivserveError
from privserve.models.registry import (
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


def describe_settings(settings: Settings) -> ServedModels:
    """The models `serve` would offer with these settings; the embedding model is loaded to
    read its vector size and input limit."""
    from privserve.engine.embedding.model import SentenceEmbedder

    chat = [ChatModelInfo(s.model_id, settings.llama.n_ctx) for s in resolve_chat_models(settings)]
    embedding: list[EmbeddingModelInfo] = []
    try:
        resolved = resolve_embedding_model(settings)
        if resolved is not None:
            model = SentenceEmbedder(*resolved, shortenable=settings.embedding.shortenable)
            embedding.append(
                EmbeddingModelInfo(
                    model.model_id, model.dimensions, model.max_input_tokens, model.shortenable
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


def _aliases(pairs: list[str] | None) -> dict[str, str]:
    aliases = {}
    for pair in pairs or []:
        served, sep, name = pair.partition("=")
        if not sep or not served.strip() or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not SERVED_ID=NAME", param_hint="--alias")
        aliases[served.strip()] = name.strip()
    return aliases


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


def _run(
    build: Any,
    settings: Settings,
    base_url: str | None,
    key: str | None,
    new_key: str | None,
    alias: list[str] | None,
) -> None:
    notes = Console(stderr=True, highlight=False, soft_wrap=True)
    logging.basicConfig(level=logging.WARNING)
    try:
        # Models and aliases first: a setting that fails must not leave a new key behind.
        models = describe_settings(settings)
        aliases = _aliases(alias)
        served = [
            *(m.model_id for m in models.chat),
            *(m.model_id for m in models.embedding),
            *(m.model_id for m in models.rerank),
        ]
        unknown = sorted(set(aliases) - set(served))
        if unknown:
            raise InvalidRequest(
                f"--alias names {', '.join(unknown)}, which this server does not serve "
                f"(it serves {', '.join(dict.fromkeys(served))})",
                param="alias",
            )
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
    _run(lambda m, e: fastgpt(m, e, fmt), settings, base_url, key, new_key, alias)


def oneapi_channel(
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
    _run(one_api_channel, settings, base_url, key, new_key, alias)


def register(app: typer.Typer) -> None:
    app.command("fastgpt-config")(fastgpt_config)
    app.command("oneapi-channel")(oneapi_channel)
