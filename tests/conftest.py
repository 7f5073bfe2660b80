"""Fixtures every test shares."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests see no PRIVSERVE_* variables from the machine they run on."""
    for name in list(os.environ):
        if name.startswith("PRIVSERVE_"):
            monkeypatch.delenv(name)
    yield
