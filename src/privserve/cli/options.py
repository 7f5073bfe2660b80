"""Options shared by commands, and turning flags into Settings overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from privserve.config import Settings, load_settings

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="PRIVSERVE_CONFIG",
        help="TOML file with settings (flags and PRIVSERVE_* variables override it).",
        exists=True,
        dir_okay=False,
    ),
]
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Data directory (env: PRIVSERVE_HOME; default ~/.privserve)."),
]


def settings_from(config: Path | None, **flags: object) -> Settings:
    """Flags given as `section__field` go into that section; unset (None) flags are skipped."""
    overrides: dict[str, object] = {}
    for name, value in flags.items():
        if value is None:
            continue
        section, _, field = name.partition("__")
        if field:
            nested = overrides.setdefault(section, {})
            assert isinstance(nested, dict)
            nested[field] = value
        else:
            overrides[name] = value
    return load_settings(config, **overrides)
