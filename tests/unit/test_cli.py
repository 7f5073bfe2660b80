"""The CLI through Typer's runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from privserve import __version__
from privserve.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_keys_lifecycle(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path)]
    created = runner.invoke(app, ["keys", "create", "--name", "bob", *home])
    assert created.exit_code == 0, created.stdout
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("sk-ps-")
    listed = runner.invoke(app, ["keys", "list", *home])
    assert "bob" in listed.stdout and "active" in listed.stdout and key not in listed.stdout
    assert runner.invoke(app, ["keys", "revoke", "bob", *home]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["keys", "list", *home]).stdout
    assert runner.invoke(app, ["keys", "revoke", "bob", *home]).exit_code == 1


def test_models_lists_the_bundled_model(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "--home", str(tmp_path)])
    assert result.exit_code == 0
    assert "gemma3-270m" in result.stdout


def test_serve_refuses_an_unknown_model(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--home", str(tmp_path), "--model", "nope.gguf"])
    assert result.exit_code != 0
    assert "neither a bundled model" in str(result.exception)
