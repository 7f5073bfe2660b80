"""The CLI through Typer's runner."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_serve_refuses_an_unknown_model_in_one_line_and_creates_no_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVSERVE_")}
    done = subprocess.run(
        [sys.executable, "-m", "privserve", "serve", "--home", str(tmp_path), "--model", "nope"],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: no chat model 'nope'") and "gemma3-270m" in line
    listed = runner.invoke(app, ["keys", "list", "--home", str(tmp_path)])
    assert "active" not in listed.stdout  # the failed start left no key behind


def test_keys_create_quiet_prints_the_key_alone_and_names_are_unique(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path)]
    created = runner.invoke(app, ["keys", "create", "--name", "ci", "--quiet", *home])
    assert created.exit_code == 0
    assert created.stdout.strip().startswith("sk-ps-") and len(created.stdout.splitlines()) == 1
    again = runner.invoke(app, ["keys", "create", "--name", "ci", *home])
    assert again.exit_code != 0
    assert "named 'ci' already" in str(again.exception)


def integration_args(tmp_path: Path, *more: str) -> list[str]:
    model = tmp_path / "glm2-q4.gguf"
    model.write_bytes(b"")  # only its name is read: the entries come from the settings
    return [
        "--home",
        str(tmp_path),
        "--model",
        str(model),
        "--ctx-size",
        "8192",
        "--embedding-model",
        "",
        "--base-url",
        "http://gpu-box:6006",
        *more,
    ]


def test_fastgpt_config_prints_json_for_the_serve_flags(tmp_path: Path) -> None:
    import json

    result = runner.invoke(
        app, ["fastgpt-config", *integration_args(tmp_path, "--model-id", "chatglm2")]
    )
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    (llm,) = config["llmModels"]
    assert (llm["model"], llm["maxContext"]) == ("chatglm2", 8192)
    assert config["vectorModels"] == [] and config["reRankModels"] == []


def test_oneapi_channel_with_a_new_key_that_then_exists(tmp_path: Path) -> None:
    import json

    result = runner.invoke(
        app, ["oneapi-channel", *integration_args(tmp_path, "--new-key", "one-api")]
    )
    assert result.exit_code == 0, result.output
    channel = json.loads(result.stdout)
    assert channel["key"].startswith("sk-ps-") and channel["models"] == "glm2-q4"
    assert channel["base_url"] == "http://gpu-box:6006/v1"
    assert "one-api" in runner.invoke(app, ["keys", "list", "--home", str(tmp_path)]).stdout


def test_integration_commands_refuse_a_bad_alias_and_url(tmp_path: Path) -> None:
    bad_alias = runner.invoke(
        app, ["oneapi-channel", *integration_args(tmp_path, "--alias", "nothing")]
    )
    assert bad_alias.exit_code != 0
    not_served = runner.invoke(
        app,
        ["oneapi-channel", *integration_args(tmp_path, "--alias", "qwen=x", "--new-key", "k")],
    )
    assert not_served.exit_code == 1 and "does not serve" in not_served.output
    assert "glm2-q4" in not_served.output  # it names what is served
    listed = runner.invoke(app, ["keys", "list", "--home", str(tmp_path)])
    assert "active" not in listed.stdout  # and made no key
    # The last --base-url wins, as with any option given twice.
    bad_url = runner.invoke(app, ["oneapi-channel", *integration_args(tmp_path, "--base-url", "x")])
    assert bad_url.exit_code == 1 and "not an http(s) URL" in bad_url.output


def test_models_add_tells_a_cross_encoder_from_an_embedding_model(tmp_path: Path) -> None:
    cross_encoder = tmp_path / "bge-reranker"
    cross_encoder.mkdir()
    (cross_encoder / "config.json").write_text(
        '{"architectures": ["XLMRobertaForSequenceClassification"]}'
    )
    embedder = tmp_path / "m3e"
    embedder.mkdir()
    (embedder / "modules.json").write_text("[]")
    (embedder / "config.json").write_text('{"architectures": ["BertModel"]}')
    unknown = tmp_path / "something"
    unknown.mkdir()
    (unknown / "config.json").write_text('{"architectures": ["BertModel"]}')
    home = ["--home", str(tmp_path / "home")]
    for name, path, kind in (("r", cross_encoder, "rerank"), ("e", embedder, "embedding")):
        added = runner.invoke(app, ["models", "add", name, str(path), *home])
        assert added.exit_code == 0 and f"({kind})" in added.stdout, added.stdout
    refused = runner.invoke(app, ["models", "add", "x", str(unknown), *home])
    assert refused.exit_code == 1 and "pass --kind" in refused.stdout
    forced = runner.invoke(app, ["models", "add", "x", str(unknown), "--kind", "embedding", *home])
    assert forced.exit_code == 0


def test_keys_update_changes_only_what_is_given_and_refuses_bad_settings(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path)]
    assert (
        runner.invoke(app, ["keys", "create", "--name", "a", "--owner", "kb", *home]).exit_code == 0
    )
    changed = runner.invoke(app, ["keys", "update", "a", "--models", "qwen*", "--admin", *home])
    assert changed.exit_code == 0, changed.output
    shown = runner.invoke(app, ["keys", "show", "a", *home]).stdout
    assert "models: qwen*" in shown and "admin: yes" in shown and "owner: kb" in shown
    refused = runner.invoke(app, ["keys", "update", "a", "--networks", "10.0.0.0/33", *home])
    assert refused.exit_code != 0 and "not a CIDR network" in str(refused.exception)
    assert "networks: any" in runner.invoke(app, ["keys", "show", "a", *home]).stdout
