"""The CLI's one rich console; nothing else in privserve prints."""

from __future__ import annotations

from rich.console import Console


def make_console(*, stderr: bool = False) -> Console:
    return Console(highlight=False, soft_wrap=True, stderr=stderr)


def human_size(size_bytes: int) -> str:
    """A file size as a person reads it: MB below a tenth of a GB, else GB."""
    if size_bytes < 1e8:
        return f"{size_bytes / 1e6:.1f} MB"
    return f"{size_bytes / 1e9:.2f} GB"
