"""`privserve usage`: the ledger's requests and tokens per key, model or day."""

from __future__ import annotations

import csv
import sys
from typing import Annotated, Literal

import typer
from rich import box
from rich.table import Table

from privserve.cli.keys import print_json, with_key_admin
from privserve.cli.options import ConfigOption, HomeOption, settings_from
from privserve.cli.output import make_console
from privserve.errors import InvalidRequest

COLUMNS = (
    "requests",
    "errors",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "total_tokens",
)


def usage(
    key: Annotated[str | None, typer.Option(help="Only this key: its id, name or prefix.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From 7d, 24h, 90m, 2w ago, or an ISO date on.")
    ] = None,
    by: Annotated[str, typer.Option(help="Group by key, model or day (UTC).")] = "key",
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON, as the admin API does.")
    ] = False,
    config: ConfigOption = None,
    home: HomeOption = None,
) -> None:
    """Requests and tokens from the usage ledger, the model's own token counts."""
    if by not in ("key", "model", "day"):
        raise InvalidRequest(f"--by takes key, model or day, not {by!r}", param="by")
    grouping: Literal["key", "model", "day"] = by  # type: ignore[assignment]
    settings = settings_from(config, home=home)
    report = with_key_admin(
        settings,
        lambda admin: admin.usage(key=key, model=model, since_text=since, by=grouping),
    )
    if as_json:
        print_json(report)
        return
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow([by, *COLUMNS])
        for row in report.data:
            writer.writerow([row.group, *(getattr(row, c) for c in COLUMNS)])
        return
    table = Table(by, *(c.replace("_", " ") for c in COLUMNS), box=box.SIMPLE_HEAD)
    for row in report.data:
        table.add_row(row.group, *(f"{getattr(row, c):,}" for c in COLUMNS))
    if len(report.data) > 1:
        table.add_row("all", *(f"{sum(getattr(r, c) for r in report.data):,}" for c in COLUMNS))
    make_console().print(table)
