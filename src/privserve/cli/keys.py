"""`privserve keys create|list|revoke`: manage API keys in the database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from privserve.auth.keys import KeyStore, open_key_store
from privserve.cli.options import ConfigOption, HomeOption, settings_from
from privserve.cli.output import make_console
from privserve.config import Settings

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
T = TypeVar("T")


def with_key_store(settings: Settings, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_key_store(settings) as store:
            return await action(store)

    return asyncio.run(run())


@app.command("create")
def create(
    name: Annotated[
        str, typer.Option("--name", help="A label to recognize the key by.")
    ] = "default",
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print the key alone, for KEY=$(privserve keys create -q)."
        ),
    ] = False,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Create a key and print it once; only its hash is stored. Names are unique among
    active keys."""
    settings = settings_from(config, home=home)
    issued = with_key_store(settings, lambda store: store.create(name))
    if quiet:
        typer.echo(issued.plaintext)
        return
    console = make_console()
    console.print(f"Created key [bold]{issued.row.name}[/] (id {issued.row.id}).")
    console.print("Copy it now, it is not shown again:")
    console.print(issued.plaintext, markup=False)


@app.command("list")
def list_keys(config: ConfigOption = None, home: HomeOption = None) -> None:
    """List keys by id, name and prefix (keys themselves are never stored)."""
    settings = settings_from(config, home=home)
    rows = with_key_store(settings, lambda store: store.all())
    table = Table("id", "name", "prefix", "created", "status")
    for row in rows:
        status = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
        table.add_row(
            str(row.id), row.name, row.prefix + "…", f"{row.created_at:%Y-%m-%d %H:%M}", status
        )
    make_console().print(table)


@app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="The key's id, name or prefix.")],
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Revoke a key at once: requests using it get 401 from then on."""
    settings = settings_from(config, home=home)
    row = with_key_store(settings, lambda store: store.revoke(key))
    console = make_console()
    if row is None:
        console.print(f"No active key matches {key!r}.", markup=False)
        raise typer.Exit(1)
    console.print(f"Revoked key {row.id} ({row.name}, {row.prefix}…).", markup=False)
