"""`privserve keys create|list|show|revoke`: manage API keys in the database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich import box
from rich.table import Table

from privserve.auth import access
from privserve.auth.keys import KeyStore, open_key_store
from privserve.cli.options import ConfigOption, HomeOption, settings_from
from privserve.cli.output import make_console
from privserve.config import Settings
from privserve.errors import InvalidRequest

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
    owner: Annotated[
        str | None, typer.Option(help="Who the key is for (a person, a team, an app).")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Models it may use: ids or * patterns, commas between; default: all."),
    ] = None,
    networks: Annotated[
        str | None,
        typer.Option(help="Client networks it may be used from (CIDR, commas); default: any."),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(help="When it stops working: 30d, 12h, 90m, 2w, or an ISO date."),
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="It may manage keys.")] = False,
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
    # Every setting is checked before anything is written.
    allowed_models = access.model_patterns(models)
    allowed_networks = access.networks(networks)
    expires_at = access.expiry(expires)
    issued = with_key_store(
        settings,
        lambda store: store.create(
            name,
            owner=owner,
            expires_at=expires_at,
            is_admin=admin,
            models=allowed_models,
            networks=allowed_networks,
        ),
    )
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
    table = Table("id", "name", "prefix", "models", "expires", "status", box=box.SIMPLE_HEAD)
    for row in rows:
        status = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
        if row.is_admin and not row.revoked_at:
            status += ", admin"
        expires = f"{row.expires_at:%Y-%m-%d %H:%M}" if row.expires_at else ""
        allowed = ",".join(access.from_json(row.models)) or "all"
        table.add_row(str(row.id), row.name, row.prefix + "…", allowed, expires, status)
    make_console().print(table)


@app.command("update")
def update(
    key: Annotated[str, typer.Argument(help="The key's id, name or prefix.")],
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    owner: Annotated[str | None, typer.Option(help="Who the key is for.")] = None,
    models: Annotated[
        str | None, typer.Option(help="Models it may use (ids or * patterns); '' for all.")
    ] = None,
    networks: Annotated[
        str | None, typer.Option(help="Client networks (CIDR); '' for any.")
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="30d, 12h, 90m, 2w, an ISO date, or 'never'.")
    ] = None,
    admin: Annotated[
        bool | None, typer.Option("--admin/--no-admin", help="Whether it may manage keys.")
    ] = None,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Change what a key may do; only the options given change."""
    settings = settings_from(config, home=home)
    fields: dict[str, object] = {}
    if name is not None:
        fields["name"] = name
    if owner is not None:
        fields["owner"] = owner
    if models is not None:
        fields["models"] = access.model_patterns(models)
    if networks is not None:
        fields["networks"] = access.networks(networks)
    if expires is not None:
        fields["expires_at"] = None if expires == "never" else access.expiry(expires)
    if admin is not None:
        fields["is_admin"] = admin

    async def change(store: KeyStore) -> str:
        found = await store.find(key)
        row = None if found is None else await store.update(found.id, **fields)
        if row is None:
            raise InvalidRequest(f"no active key {key!r}")
        return f"Updated key {row.id} ({row.name})."

    make_console().print(with_key_store(settings, change), markup=False)


@app.command("show")
def show(
    key: Annotated[str, typer.Argument(help="The key's id, name or prefix.")],
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Everything stored about one key (never the key itself: only its hash is kept)."""
    settings = settings_from(config, home=home)
    row = with_key_store(settings, lambda store: store.find(key, revoked_too=True))
    if row is None:
        raise InvalidRequest(f"no key {key!r}")
    console = make_console()
    fields = {
        "id": row.id,
        "name": row.name,
        "owner": row.owner or "",
        "prefix": row.prefix + "…",
        "admin": "yes" if row.is_admin else "no",
        "models": ", ".join(access.from_json(row.models)) or "all",
        "networks": ", ".join(access.from_json(row.networks)) or "any",
        "created": f"{row.created_at:%Y-%m-%d %H:%M}",
        "expires": f"{row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "never",
        "status": f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active",
    }
    for field, value in fields.items():
        console.print(f"{field}: {value}", markup=False)


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
