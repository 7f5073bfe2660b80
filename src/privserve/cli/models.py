"""`privserve models`: what can be served."""

from __future__ import annotations

import typer
from rich.table import Table

from privserve.cli.options import ConfigOption, HomeOption, settings_from
from privserve.cli.output import make_console
from privserve.models.bundled import BUNDLED_MODELS


def list_models(config: ConfigOption = None, home: HomeOption = None) -> None:
    """List bundled models and whether their files are in PRIVSERVE_HOME yet."""
    settings = settings_from(config, home=home)
    table = Table("model", "description", "file", "default")
    for model in BUNDLED_MODELS.values():
        path = settings.models_dir / model.filename
        table.add_row(
            model.name,
            model.description,
            str(path) if path.is_file() else "assembled on first serve",
            "yes" if settings.model == model.name else "",
        )
    console = make_console()
    console.print(table)
    if settings.model not in BUNDLED_MODELS:
        console.print(f"Configured model: {settings.model}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("models")(list_models)
