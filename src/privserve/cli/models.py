"""`privserve models`: what can be served, and the registry of named models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from privserve.cli.options import ConfigOption, HomeOption, settings_from
from privserve.cli.output import human_size, make_console
from privserve.config import Settings
from privserve.errors import ModelLoadError, PrivserveError
from privserve.models.bundled import BUNDLED_EMBEDDING_MODELS, BUNDLED_MODELS
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
    table = Table()
    for column in ("name", "kind", "precision", "size", "context", "chat template", "where"):
        # Names are copied into commands: never cut or wrapped; long paths fold instead.
        table.add_column(column, no_wrap=column == "name", overflow="fold")
    for bundled in BUNDLED_MODELS.values():
        path = settings.models_dir / bundled.filename
        where = str(path) if path.is_file() else "bundled; assembled on first serve"
        default = " (default)" if bundled.name in settings.model else ""
        table.add_row(bundled.name + default, "chat", "q4_k_m", "", "", "embedded", where)
    for embedding in BUNDLED_EMBEDDING_MODELS.values():
        default = " (default)" if settings.embedding.model == embedding.name else ""
        table.add_row(embedding.name + default, "embedding", "", "", "", "", "bundled")
    for model in ModelStore(settings.models_dir).all():
        table.add_row(
            model.name,
            model.kind,
            model.precision or "",
            _size(model),
            str(model.context_length or ""),
            model.chat_template or "",
            str(model.path),
        )
    console = make_console()
    console.print(table)
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
        typer.Option(help="chat, embedding or rerank (default: chat for .gguf, else embedding)."),
    ] = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Register a model file or directory under a name for `serve`."""
    settings = settings_from(config, home=home)
    console = make_console()
    path = path.expanduser().resolve()
    chosen = kind or ("chat" if path.suffix == ".gguf" else "embedding")
    if chosen not in ("chat", "embedding", "rerank"):
        raise typer.BadParameter("must be chat, embedding or rerank", param_hint="--kind")
    try:
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
    model = ModelStore(settings.models_dir).get(name)
    if model is None:
        make_console().print(f"[red]error:[/red] no registered model named {name!r}")
        raise typer.Exit(1)
    return model


def _describe(name: str, path: Path, kind: Kind) -> RegisteredModel:
    if kind == "chat":
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
            chat_template="embedded" if "tokenizer.chat_template" in metadata else None,
            architecture=architecture or None,
        )
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ModelLoadError(f"{path} is not a sentence-transformers model directory")
    return RegisteredModel(name=name, kind=kind, path=path)
