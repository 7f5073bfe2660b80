"""The CLI's one rich console; nothing else in privserve prints."""

from __future__ import annotations

from rich.console import Console


def make_console() -> Console:
    return Console(highlight=False, soft_wrap=True)
