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
    assert [m.id for m in models.data] == [MODEL_ID]
    model = client.models.retrieve(MODEL_ID)
    assert model.object == "model" and model.owned_by == "privserve"


def test_health_without_key(server: RunningServer) -> None:
    response = httpx.get(server.root_url + "/health")
    assert response.status_code == 200
    assert MODEL_ID in response.json()["models"]
