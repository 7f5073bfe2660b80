"""`/admin/v1/keys` through the real server: only admin keys manage keys; what they make
works at once, as limited as asked; bad settings change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer, start_server
from tests.integration.test_errors import error_of

pytestmark = pytest.mark.model

ADMIN = "sk-test-admin-" + "a" * 20
ORDINARY = "sk-test-ordinary-" + "o" * 20


@pytest.fixture(scope="module")
def managed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home: Path = tmp_path_factory.mktemp("admin")
    running = start_server(
        home,
        args=["--embedding-model", ""],
        env={"PRIVSERVE_ADMIN_KEY": ADMIN, "PRIVSERVE_API_KEY": ORDINARY},
    )
    yield running
    running.stop()


def as_key(server: RunningServer, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.root_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def test_an_ordinary_key_may_not_manage_keys(managed: RunningServer) -> None:
    with as_key(managed, ORDINARY) as http:
        for method, path in (("GET", "/admin/v1/keys"), ("POST", "/admin/v1/keys")):
            refused = http.request(method, path, json={"name": "x"})
            assert error_of(refused, 403)["code"] == "permission_denied"
    with as_key(managed, ADMIN) as http:
        assert http.get("/admin/v1/keys").json()["data"] == []  # nothing was made


def test_a_key_made_changed_and_revoked_through_the_admin_api(managed: RunningServer) -> None:
    with as_key(managed, ADMIN) as admin:
        made = admin.post(
            "/admin/v1/keys",
            json={"name": "kb", "owner": "search team", "models": ["gemma3*"], "expires": "7d"},
        )
        assert made.status_code == 200, made.text
        created = made.json()
        key, key_id = created.pop("key"), created["id"]
        assert key.startswith("sk-ps-") and created["prefix"] == key[:12]
        assert created["models"] == ["gemma3*"] and created["admin"] is False
        listed = admin.get("/admin/v1/keys").text
        assert "kb" in listed and key not in listed  # the secret is shown once only
        with openai.OpenAI(base_url=managed.base_url, api_key=key, max_retries=0) as client:
            assert [m.id for m in client.models.list()] == [MODEL_ID]
        changed = admin.patch(f"/admin/v1/keys/{key_id}", json={"models": ["other-*"]})
        assert changed.status_code == 200 and changed.json()["models"] == ["other-*"]
        with openai.OpenAI(base_url=managed.base_url, api_key=key, max_retries=0) as client:
            assert client.models.list().data == []
        assert admin.get(f"/admin/v1/keys/{key_id}").json()["owner"] == "search team"
        revoked = admin.delete(f"/admin/v1/keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        with as_key(managed, key) as gone:
            assert error_of(gone.get("/v1/models"), 401)["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "bad", "networks": ["10.0.0.0/33"]}, "networks"),
        ({"name": "bad", "expires": "2020-01-01"}, "expires"),
        ({"name": "bad", "expires": "100/fortnight"}, "expires"),
        ({"name": "bad", "models": ["a b"]}, "models"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_settings_are_a_400_naming_the_field_and_change_nothing(
    managed: RunningServer, body: dict[str, object], param: str
) -> None:
    with as_key(managed, ADMIN) as admin:
        before = admin.get("/admin/v1/keys").json()["data"]
        assert error_of(admin.post("/admin/v1/keys", json=body), 400)["param"] == param
        assert admin.get("/admin/v1/keys").json()["data"] == before


def test_an_unknown_key_id_is_404(managed: RunningServer) -> None:
    with as_key(managed, ADMIN) as admin:
        for method in ("GET", "PATCH", "DELETE"):
            missing = admin.request(method, "/admin/v1/keys/99999", json={"owner": "x"})
            assert error_of(missing, 404)["code"] == "not_found"


def test_delete_takes_an_id_never_a_name_that_looks_like_one(managed: RunningServer) -> None:
    """A key named "99998" is not key 99998: deleting that id revokes nothing."""
    with as_key(managed, ADMIN) as admin:
        made = admin.post("/admin/v1/keys", json={"name": "99998"}).json()
        assert error_of(admin.delete("/admin/v1/keys/99998"), 404)["code"] == "not_found"
        assert admin.get(f"/admin/v1/keys/{made['id']}").json()["revoked_at"] is None
        assert admin.delete(f"/admin/v1/keys/{made['id']}").status_code == 200


def test_any_key_reads_who_it_is_and_its_own_usage_only(managed: RunningServer) -> None:
    with as_key(managed, ADMIN) as admin:
        made = admin.post("/admin/v1/keys", json={"name": "reader", "models": ["gemma3*"]})
        key = made.json()["key"]
    with openai.OpenAI(base_url=managed.base_url, api_key=key) as client:
        client.chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
    with as_key(managed, ORDINARY) as other:  # another key's request, not the reader's
        other.post(
            "/v1/completions", json={"model": MODEL_ID, "prompt": "Hi", "max_tokens": 5}
        ).raise_for_status()
    with as_key(managed, key) as reader:
        me = reader.get("/v1/privserve/me").json()
        assert me == {
            "object": "caller",
            "key_id": made.json()["id"],
            "name": "reader",
            "admin": False,
            "models": ["gemma3*"],
        }
        by_model = reader.get("/v1/privserve/usage", params={"by": "model"}).json()
        [mine] = by_model["data"]
        assert (mine["group"], mine["requests"], mine["completion_tokens"]) == (MODEL_ID, 1, 2)
        by_day = reader.get("/v1/privserve/usage").json()
        assert by_day["by"] == "day" and sum(d["requests"] for d in by_day["data"]) == 1
        # Another key's usage is not a filter it may set.
        refused = reader.get("/v1/privserve/usage", params={"by": "key"})
        assert error_of(refused, 400)["param"] is not None
    with as_key(managed, ADMIN) as admin:
        assert admin.get("/v1/privserve/me").json()["admin"] is True
