"""The `privserve` command."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from privserve import __version__
from privserve.cli import convert, integrations, keys, models
from privserve.cli.output import make_console
from privserve.cli.serve import serve
from privserve.cli.usage import usage
from privserve.errors import PrivserveError

app = typer.Typer(
    help="Private models behind an OpenAI-compatible API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve)
app.command("usage")(usage)
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
        make_console(stderr=True).print(f"[red]error:[/red] {exc.message}", markup=True)
        sys.exit(1)
    except ValidationError as exc:
        # A flag a wire type refuses (a name too long): the first reason, in one line.
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        make_console(stderr=True).print(f"error: {where}: {first['msg']}", markup=False)
        sys.exit(1)
