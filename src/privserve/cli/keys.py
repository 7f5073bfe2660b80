"""`privserve keys create|list|show|update|revoke`: manage API keys in the database.

The commands go through the same KeyAdmin as `/admin/v1/keys`, so a setting is checked the
same way, and shown the same way with `--json`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich import box
from rich.table import Table

from privserve.auth import access
from privserve.auth.keys import KeyStore, open_key_store
from privserve.cli.options import ConfigOption, HomeOption, settings_from
from privserve.cli.output import make_console
from privserve.config import Settings
from privserve.errors import InvalidRequest, NotFound
from privserve.protocol.admin import KeyCreate, KeyInfo, KeyUpdate
from privserve.services.admin import KeyAdmin
from privserve.storage.db import open_database
from privserve.storage.usage import UsageRepo

app = typer.Typer(help="Create, list, change and revoke API keys.", no_args_is_help=True)
T = TypeVar("T")


def with_key_store(settings: Settings, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_key_store(settings) as store:
            return await action(store)

    return asyncio.run(run())


def with_key_admin(settings: Settings, action: Callable[[KeyAdmin], Awaitable[T]]) -> T:
    async def run() -> T:
        async with AsyncExitStack() as stack:
            db = await stack.enter_async_context(open_database(settings.database_url))
            store = await stack.enter_async_context(open_key_store(settings, db))
            return await action(KeyAdmin(store, UsageRepo(db)))

    return asyncio.run(run())


def print_json(value: BaseModel | list[Any]) -> None:
    if isinstance(value, BaseModel):
        typer.echo(value.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps(value, indent=2, default=str))


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, as the admin API does.")]
RpmOption = Annotated[
    str | None, typer.Option("--rpm", help="Requests per minute ('none': no limit).")
]
TpmOption = Annotated[
    str | None,
    typer.Option("--tpm", help="Tokens per minute, prompt plus completion ('none': no limit)."),
]
ConcurrencyOption = Annotated[
    str | None,
    typer.Option("--concurrency", help="Requests running at once ('none': no limit)."),
]
QuotaOption = Annotated[
    str | None,
    typer.Option(
        "--quota", help="Tokens in all or per UTC period: 2000000/month, 50000/day, 1000000."
    ),
]
PriorityOption = Annotated[
    str | None,
    typer.Option(
        "--priority", help="interactive (default) or batch: batch waits behind interactive."
    ),
]


def limit_fields(
    rpm: str | None,
    tpm: str | None,
    concurrency: str | None,
    quota: str | None,
    priority: str | None,
) -> dict[str, Any]:
    """The limit flags given, checked (one clear line for a bad one) and ready for the wire
    type; 'none' clears a limit."""
    fields: dict[str, Any] = {}
    for name, value in (("rpm", rpm), ("tpm", tpm), ("concurrency", concurrency)):
        if value is not None:
            fields[name] = access.limit(value, name)
    if quota is not None:
        parsed = access.quota(quota)
        fields["quota"] = None if parsed is None else str(parsed)
    if priority is not None:
        fields["priority"] = access.priority(priority)
    return fields


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
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    concurrency: ConcurrencyOption = None,
    quota: QuotaOption = None,
    priority: PriorityOption = None,
    admin: Annotated[bool, typer.Option("--admin", help="It may manage keys.")] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print the key alone, for KEY=$(privserve keys create -q)."
        ),
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Create a key and print it once; only its hash is stored. Names are unique among
    active keys."""
    settings = settings_from(config, home=home)
    # Every setting is checked (by KeyAdmin) before anything is written.
    request = KeyCreate(
        name=name,
        owner=owner,
        models=list(access.model_patterns(models)),
        networks=list(access.networks(networks)),
        expires=expires,
        admin=admin,
        **limit_fields(rpm, tpm, concurrency, quota, priority),
    )
    created = with_key_admin(settings, lambda admin_: admin_.create(request))
    if quiet:
        typer.echo(created.key)
        return
    if as_json:
        print_json(created)
        return
    console = make_console()
    console.print(f"Created key [bold]{created.name}[/] (id {created.id}).")
    console.print("Copy it now, it is not shown again:")
    console.print(created.key, markup=False)


def _limits_text(key: KeyInfo) -> str:
    parts = [
        f"{value} {unit}"
        for value, unit in ((key.rpm, "rpm"), (key.tpm, "tpm"), (key.concurrency, "at once"))
        if value is not None
    ]
    if key.priority == "batch":
        parts.append("batch")
    return ", ".join(parts)


def _quota_text(key: KeyInfo) -> str:
    if key.quota is None:
        return ""
    tokens, _, period = key.quota.partition("/")
    left = max(int(tokens) - (key.quota_used or 0) - (key.quota_held or 0), 0)
    return f"{left:,} of {int(tokens):,}" + ("" if period == "total" else f"/{period}")


@app.command("list")
def list_keys(
    as_json: JsonOption = False, config: ConfigOption = None, home: HomeOption = None
) -> None:
    """List keys by id, name and prefix (keys themselves are never stored)."""
    settings = settings_from(config, home=home)
    keys = with_key_admin(settings, lambda admin: admin.list())
    if as_json:
        print_json(keys)
        return
    table = Table(
        "id",
        "name",
        "owner",
        "prefix",
        "models",
        "limits",
        "quota left",
        "last used",
        "expires",
        "status",
        box=box.SIMPLE_HEAD,
    )
    for key in keys.data:
        status = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        if key.admin and not key.revoked_at:
            status += ", admin"
        table.add_row(
            str(key.id),
            key.name,
            key.owner or "",
            key.prefix + "…",
            ",".join(key.models) or "all",
            _limits_text(key),
            _quota_text(key),
            f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "",
            f"{key.expires_at:%Y-%m-%d %H:%M}" if key.expires_at else "",
            status,
        )
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
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    concurrency: ConcurrencyOption = None,
    quota: QuotaOption = None,
    priority: PriorityOption = None,
    admin: Annotated[
        bool | None, typer.Option("--admin/--no-admin", help="Whether it may manage keys.")
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Change what a key may do; only the options given change."""
    settings = settings_from(config, home=home)
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = name
    if owner is not None:
        fields["owner"] = owner
    if models is not None:
        fields["models"] = list(access.model_patterns(models))
    if networks is not None:
        fields["networks"] = list(access.networks(networks))
    if expires is not None:
        fields["expires"] = expires
    if admin is not None:
        fields["admin"] = admin
    fields.update(limit_fields(rpm, tpm, concurrency, quota, priority))
    request = KeyUpdate(**fields)

    async def change(key_admin: KeyAdmin) -> KeyInfo:
        found = await key_admin.find(key)
        if found.revoked_at is not None:
            raise InvalidRequest(f"no active key {key!r}")
        return await key_admin.update(found.id, request)

    changed = with_key_admin(settings, change)
    if as_json:
        print_json(changed)
        return
    make_console().print(f"Updated key {changed.id} ({changed.name}).", markup=False)


@app.command("show")
def show(
    key: Annotated[str, typer.Argument(help="The key's id, name or prefix.")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Everything stored about one key (never the key itself: only its hash is kept)."""
    settings = settings_from(config, home=home)
    info = with_key_admin(settings, lambda admin: admin.find(key))
    if as_json:
        print_json(info)
        return
    fields = {
        "id": info.id,
        "name": info.name,
        "owner": info.owner or "",
        "prefix": info.prefix + "…",
        "admin": "yes" if info.admin else "no",
        "models": ", ".join(info.models) or "all",
        "networks": ", ".join(info.networks) or "any",
        "requests per minute": info.rpm or "no limit",
        "tokens per minute": info.tpm or "no limit",
        "concurrent requests": info.concurrency or "no limit",
        "quota": info.quota or "none",
        "quota used": "" if info.quota is None else f"{info.quota_used or 0:,}",
        "quota held": "" if info.quota is None else f"{info.quota_held or 0:,}",
        "quota resets": f"{info.quota_resets_at:%Y-%m-%d %H:%M} UTC"
        if info.quota_resets_at
        else "",
        "priority": info.priority,
        "created": f"{info.created_at:%Y-%m-%d %H:%M}",
        "last used": f"{info.last_used_at:%Y-%m-%d %H:%M}" if info.last_used_at else "never",
        "expires": f"{info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else "never",
        "status": f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active",
    }
    console = make_console()
    for field, value in fields.items():
        if value != "":
            console.print(f"{field}: {value}", markup=False)


@app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="The key's id, name or prefix.")],
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Revoke a key at once: requests using it get 401 from then on."""
    settings = settings_from(config, home=home)

    async def revoke_one(key_admin: KeyAdmin) -> KeyInfo | None:
        found = await key_admin.find(key)
        if found.revoked_at is not None:
            return None
        return await key_admin.revoke(found.id)

    try:
        row = with_key_admin(settings, revoke_one)
    except NotFound:
        row = None
    console = make_console()
    if row is None:
        console.print(f"No active key matches {key!r}.", markup=False)
        raise typer.Exit(1)
    console.print(f"Revoked key {row.id} ({row.name}, {row.prefix}…).", markup=False)
