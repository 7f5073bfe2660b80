"""`privserve models`: what can be served, and the registry of named models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from privserve.cli.options import ConfigOption, HomeOption, settings_from
from privserve.cli.output import human_size, make_console
from privserve.config import Settings
from privserve.errors import ModelLoadError, PrivserveError
from privserve.models.bundled import BUNDLED_EMBEDDING_MODELS, BUNDLED_MODELS, materialize
from privserve.models.store import Kind, ModelStore, RegisteredModel

app = typer.Typer(
    help="Bundled and registered models: list, show, add, remove.",
    invoke_without_command=True,
)

# llama.cpp's general.file_type numbers, for what a person reads.
FILE_TYPES = {
    "0": "f32",
    "1": "f16",
    "2": "q4_0",
    "7": "q8_0",
    "10": "q2_k",
    "12": "q3_k_m",
    "14": "q4_k_s",
    "15": "q4_k_m",
    "17": "q5_k_m",
    "18": "q6_k",
    "32": "bf16",
}


def _size(model: RegisteredModel) -> str:
    return "" if model.size_bytes is None else human_size(model.size_bytes)


@app.callback()
def models(ctx: typer.Context, config: ConfigOption = None, home: HomeOption = None) -> None:
    """List bundled and registered models (the same as `models list`)."""
    if ctx.invoked_subcommand is None:
        list_models(config, home, as_json=False)


@app.command("list")
def list_models(
    config: ConfigOption = None,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Registered models as JSON.")] = False,
) -> None:
    """Bundled and registered models, their kind, precision, size and context."""
    settings = settings_from(config, home=home)
    if as_json:
        registered = [m.model_dump(mode="json") for m in ModelStore(settings.models_dir).all()]
        typer.echo(json.dumps(registered, indent=2))
        return
    # Fits 80 columns: names are copied into commands, so they never wrap; files and the
    # whole description are in `models show NAME`.
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("name", "kind", "precision", "size", "context", "chat format"):
        table.add_column(column, no_wrap=column in ("name", "kind"), overflow="fold")

    def add(name: str, model: RegisteredModel | None, kind: str) -> None:
        if model is None:
            table.add_row(name, kind, "", "", "", "")
            return
        chat = (model.chat_template or "").split(" ")[0].rstrip(":")
        context = str(model.context_length or "")
        table.add_row(name, model.kind, model.precision or "", _size(model), context, chat)

    for bundled in BUNDLED_MODELS.values():
        path = settings.models_dir / bundled.filename
        default = " *" if bundled.name in settings.model else ""
        described = _describe(bundled.name, path, "chat") if path.is_file() else None
        add(bundled.name + default, described, "chat")
    for embedding in BUNDLED_EMBEDDING_MODELS.values():
        default = " *" if settings.embedding.model == embedding.name else ""
        add(embedding.name + default, None, "embedding")
    for model in ModelStore(settings.models_dir).all():
        add(model.name, model, model.kind)
    console = make_console()
    console.print(table)
    console.print("* served by default. Files and details: privserve models show NAME")
    others = [m for m in settings.model if m not in BUNDLED_MODELS]
    if others:
        console.print(f"Configured chat models: {', '.join(others)}", markup=False)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A registered model's name.")],
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Everything the registry knows of one model."""
    settings = settings_from(config, home=home)
    model = _get(settings, name)
    console = make_console()
    for field, value in model.model_dump().items():
        console.print(f"{field}: {'' if value is None else value}", markup=False)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Name to serve it under.")],
    path: Annotated[Path, typer.Argument(help="A .gguf file or a sentence-transformers dir.")],
    kind: Annotated[
        str | None,
        typer.Option(help="chat, embedding or rerank (default: what the file or dir says)."),
    ] = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Register a model file or directory under a name for `serve`."""
    settings = settings_from(config, home=home)
    console = make_console()
    path = path.expanduser().resolve()
    if kind is not None and kind not in ("chat", "embedding", "rerank"):
        raise typer.BadParameter("must be chat, embedding or rerank", param_hint="--kind")
    try:
        chosen = kind or detect_kind(path)
        model = _describe(name, path, chosen)  # type: ignore[arg-type]
    except PrivserveError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    ModelStore(settings.models_dir).put(model)
    console.print(f"Registered {name} ({chosen}): {path}", markup=False)


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="A registered model's name.")],
    delete_file: Annotated[
        bool, typer.Option(help="Also delete its file, if it lies in PRIVSERVE_HOME/models.")
    ] = False,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Forget a registered model (its file stays unless --delete-file)."""
    settings = settings_from(config, home=home)
    model = _get(settings, name)
    ModelStore(settings.models_dir).remove(name)
    console = make_console()
    inside_home = model.path.resolve().is_relative_to(settings.models_dir.resolve())
    if delete_file and inside_home and model.path.is_file():
        model.path.unlink()
        console.print(f"Removed {name} and deleted {model.path}", markup=False)
    else:
        console.print(f"Removed {name}; its files stay at {model.path}", markup=False)


def _get(settings: Settings, name: str) -> RegisteredModel:
    """A registered model, or a bundled one described from its file as the server uses it."""
    bundled = BUNDLED_MODELS.get(name)
    if bundled is not None:
        return _describe(name, materialize(bundled, settings.models_dir), "chat")
    model = ModelStore(settings.models_dir).get(name)
    if model is None:
        known = ", ".join(
            [*BUNDLED_MODELS, *(m.name for m in ModelStore(settings.models_dir).all())]
        )
        make_console().print(
            f"[red]error:[/red] no bundled or registered model named {name!r} (these exist: "
            f"{known})"
        )
        raise typer.Exit(1)
    return model


def detect_kind(path: Path) -> str:
    """chat for a .gguf file; for a directory, what its files say it is: a cross-encoder
    (a sequence-classification model) reranks, a sentence-transformers pipeline embeds.
    Anything else is an error: a wrong guess would serve a reranker as an embedder."""
    if path.suffix == ".gguf":
        return "chat"
    st_config = _json_file(path / "config_sentence_transformers.json")
    if str(st_config.get("model_type", "")).lower() == "crossencoder":
        return "rerank"
    if (path / "modules.json").is_file():
        return "embedding"
    architectures = _json_file(path / "config.json").get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return "rerank"
    raise ModelLoadError(
        f"cannot tell what {path} is (no modules.json of a sentence-transformers embedding "
        "model, no sequence-classification config of a cross-encoder); pass --kind"
    )


def _json_file(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _describe(name: str, path: Path, kind: Kind) -> RegisteredModel:
    if kind == "chat":
        from privserve.engine.llama.chat_format import chat_format_label
        from privserve.engine.llama.model import read_gguf_metadata  # loads llama.cpp

        if not path.is_file():
            raise ModelLoadError(f"{path} is not a file; a chat model is one .gguf file")
        metadata = read_gguf_metadata(path)
        architecture = metadata.get("general.architecture", "")
        context = metadata.get(f"{architecture}.context_length")
        return RegisteredModel(
            name=name,
            kind=kind,
            path=path,
            precision=FILE_TYPES.get(metadata.get("general.file_type", "")),
            size_bytes=path.stat().st_size,
            context_length=int(context) if context else None,
            chat_template=chat_format_label(metadata),
            architecture=architecture or None,
        )
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ModelLoadError(f"{path} is not a sentence-transformers model directory")
    return RegisteredModel(name=name, kind=kind, path=path)
