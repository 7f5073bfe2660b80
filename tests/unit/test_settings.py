"""Settings precedence: flags > environment > config file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from privserve.config import DEFAULT_CHAT_MODEL, DEFAULT_PORT, load_settings


def test_defaults() -> None:
    settings = load_settings()
    assert settings.server.port == DEFAULT_PORT == 6006
    assert settings.server.host == "127.0.0.1"
    assert settings.model == [DEFAULT_CHAT_MODEL] == ["smollm2-135m"]
    assert settings.api_key is None


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "privserve.toml"
    config.write_text('model = "from-file"\n[server]\nport = 7000\nhost = "0.0.0.0"\n')
    assert load_settings(config).server.port == 7000
    monkeypatch.setenv("PRIVSERVE_SERVER__PORT", "7100")
    monkeypatch.setenv("PRIVSERVE_API_KEY", "secret")
    settings = load_settings(config)
    assert settings.server.port == 7100
    assert settings.server.host == "0.0.0.0"
    assert settings.model == ["from-file"]
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "secret"
    assert "secret" not in repr(settings)
    flagged = load_settings(config, server={"port": 7200}, model="flag")
    assert flagged.server.port == 7200 and flagged.server.host == "0.0.0.0"
    assert flagged.model == ["flag"]


def test_several_models_from_env_toml_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "privserve.toml"
    config.write_text('model = ["a", "b.gguf"]\n')
    assert load_settings(config).model == ["a", "b.gguf"]
    monkeypatch.setenv("PRIVSERVE_MODEL", "c, d")
    assert load_settings(config).model == ["c", "d"]
    assert load_settings(config, model=["e"]).model == ["e"]


def test_home_sets_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVSERVE_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'privserve.db'}"
    assert settings.models_dir == tmp_path / "models"
