"""`privserve convert`: a Hugging Face checkpoint directory to a registered GGUF model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from privserve.cli.options import ConfigOption, HomeOption, settings_from
from privserve.cli.output import human_size, make_console
from privserve.convert.checkpoint import Checkpoint, read_checkpoint
from privserve.convert.device import serving_device
from privserve.convert.estimate import choose_bits, shape_of
from privserve.convert.pipeline import Converted, Precision, convert, precision_for
from privserve.convert.toolkit import Toolkit, ensure_toolkit
from privserve.engine.llama.chat_format import chat_format_label
from privserve.engine.llama.slots import configured_slots
from privserve.errors import PrivserveError
from privserve.models.store import ModelStore, RegisteredModel


def convert_command(
    checkpoint: Annotated[Path, typer.Argument(help="The downloaded checkpoint's directory.")],
    bits: Annotated[
        str, typer.Option(help="16, 8, 4, or auto: the most that fits this machine.")
    ] = "auto",
    name: Annotated[
        str | None, typer.Option(help="Name to register and serve it under (default: dir-bits).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for the GGUF file (default: PRIVSERVE_HOME/models)."),
    ] = None,
    sdist: Annotated[
        Path | None,
        typer.Option(help="llama-cpp-python's source release, for machines without network."),
    ] = None,
    ctx_size: Annotated[
        int | None, typer.Option(help="Context per slot that --bits auto plans for.")
    ] = None,
    parallel: Annotated[int | None, typer.Option(help="Slots that --bits auto plans for.")] = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Convert a checkpoint to GGUF at 16, 8 or 4 bits and register it for `serve --model`."""
    settings = settings_from(config, home=home, llama__n_ctx=ctx_size, llama__parallel=parallel)
    console = make_console()
    try:
        source = read_checkpoint(checkpoint.expanduser().resolve())
        if bits == "auto":
            shape = shape_of(source.config)
            slots = configured_slots(settings.llama)
            device = serving_device()
            sixteen = precision_for(16, source).label
            choice = choose_bits(
                shape, sixteen, settings.llama.n_ctx * slots, device.free_bytes, device.name
            )
            console.print(
                f"--bits auto, planning for --ctx-size {settings.llama.n_ctx} × --parallel "
                f"{slots} (pass serve's values if they differ): {choice.reason}.",
                markup=False,
            )
            chosen = choice.bits
        elif bits in ("16", "8", "4"):
            chosen = int(bits)
        else:
            raise typer.BadParameter("must be 16, 8, 4 or auto", param_hint="--bits")
        precision = precision_for(chosen, source)
        model_name = name or f"{source.path.name.lower()}-{precision.label}"
        target = (out or settings.models_dir) / f"{model_name}.gguf"
        with console.status("Getting llama.cpp's converter…"):
            toolkit = ensure_toolkit(settings.home / "tools", sdist)
        converted = _convert_with_progress(source, precision, target, toolkit, console)
    except PrivserveError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    architecture = str(converted.metadata.get("general.architecture"))
    context = converted.metadata.get(f"{architecture}.context_length")
    ModelStore(settings.models_dir).put(
        RegisteredModel(
            name=model_name,
            kind="chat",
            path=converted.path,
            precision=precision.label,
            size_bytes=converted.size_bytes,
            context_length=int(context) if context else None,
            chat_template=chat_format_label(converted.metadata),
            architecture=architecture,
            source=str(source.path),
        )
    )
    _summary(console, model_name, converted)


def _convert_with_progress(
    source: Checkpoint, precision: Precision, target: Path, toolkit: Toolkit, console: Console
) -> Converted:
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    ) as bars:

        def report(stage: str, fraction: float | None) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=1.0)
            if fraction is not None:
                bars.update(tasks[stage], completed=fraction)

        return convert(source, precision, target, toolkit, progress=report)


def _summary(console: Console, name: str, converted: Converted) -> None:
    table = Table()
    for column in ("model", "file", "size", "tensor types", "parameters", "time"):
        table.add_column(column, overflow="fold")
    types = ", ".join(f"{t} x{n}" for t, n in sorted(converted.tensor_types.items()))
    table.add_row(
        name,
        str(converted.path),
        human_size(converted.size_bytes),
        types,
        f"{converted.parameters:,}",
        f"{converted.seconds:.1f} s",
    )
    console.print(table)
    console.print(f"Registered as {name}. Serve it: privserve serve --model {name}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_command)
