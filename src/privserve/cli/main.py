"""The `privserve` command."""

from __future__ import annotations

import sys

import typer

from privserve import __version__
from privserve.cli import convert, integrations, keys, models
from privserve.cli.output import make_console
from privserve.cli.serve import serve
from privserve.errors import PrivserveError

app = typer.Typer(
    help="Private models behind an OpenAI-compatible API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve)
app.add_typer(keys.app, name="keys")
app.add_typer(models.app, name="models")
convert.register(app)
integrations.register(app)


@app.command("version")
def version() -> None:
    """Print privserve's version."""
    make_console().print(f"privserve {__version__}", markup=False)


def main() -> None:
    try:
        app()
    except PrivserveError as exc:
        # A model name, a file or a setting the user can fix: one line, no traceback.
        make_console(stderr=True).print(f"[red]error:[/red] {exc.message}")
        sys.exit(1)
