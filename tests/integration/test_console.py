"""The web console at /ui, driven in real headless Chromium (Debian's, through Playwright)
against the real server: sign-in, the playground streaming an answer, a key made on the
keys page that then works from the official `openai` client, that request on the usage
page, revoking it, and unloading and loading a model. Each page's screenshot is written to
build/console-screenshots/ (docs/console.md shows them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer, start_server
from tests.integration.test_reasoning import ANSWER, TEMPLATES, THINK_THEN_ANSWER

pytestmark = pytest.mark.model

ADMIN_KEY = "sk-test-console-admin"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "console-screenshots"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def console_server(
    tmp_path_factory: pytest.TempPathFactory, api_key: str
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("console-home"),
        env={"PRIVSERVE_API_KEY": api_key, "PRIVSERVE_ADMIN_KEY": ADMIN_KEY},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def thinking_server(
    tmp_path_factory: pytest.TempPathFactory, api_key: str
) -> Iterator[RunningServer]:
    """The bundled model behind a Qwen3-style template: it thinks."""
    running = start_server(
        tmp_path_factory.mktemp("console-thinking"),
        args=["--chat-template", str(TEMPLATES / "qwen3-style.jinja"), "--embedding-model", ""],
        env={"PRIVSERVE_API_KEY": api_key},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed: `make test` installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, console_server: RunningServer) -> Iterator[Page]:
    yield from open_page(browser, console_server)


def open_page(browser: Browser, server: RunningServer) -> Iterator[Page]:
    context = browser.new_context(
        base_url=server.root_url,
        viewport={"width": 1280, "height": 860},
        locale="en-US",
    )
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"the page threw: {errors}"


def sign_in(page: Page, key: str) -> None:
    page.goto("/ui")
    page.fill("#api-key", key)
    page.click("button[type=submit]")
    expect(page.locator("#nav")).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_sign_in_refuses_a_wrong_key_and_keeps_the_key_out_of_storage(page: Page) -> None:
    page.goto("/ui")
    screenshot(page, "sign-in")
    page.fill("#api-key", "sk-ps-not-a-key")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("refused")
    sign_in(page, ADMIN_KEY)
    expect(page.locator("#nav a")).to_have_text(
        ["Playground", "Keys", "Usage", "Models", "Integrations"]
    )
    # Held in the page's memory only: no cookie, nothing in either storage.
    assert page.context.cookies() == []
    stored = page.evaluate(
        "JSON.stringify([{...localStorage}, {...sessionStorage}, location.href])"
    )
    assert ADMIN_KEY not in stored
    page.reload()
    expect(page.locator("#api-key")).to_be_visible()


def test_the_playground_streams_an_answer_with_its_speed(page: Page) -> None:
    sign_in(page, ADMIN_KEY)
    page.click("#nav-playground")
    page.select_option("#model", MODEL_ID)
    page.fill("#max_tokens", "12")
    page.fill("#temperature", "0")
    page.fill("#prompt", "The capital of France is")
    page.click("#send")
    expect(page.locator("#finish-reason")).to_have_text("finish_reason: length")
    answer = page.locator(".message.assistant .content").inner_text()
    assert answer.strip()
    expect(page.locator("#ttft")).to_contain_text(" ms")
    expect(page.locator("#tokens-per-second")).to_contain_text("tokens/s")
    assert "completion tokens: 12" in page.locator("#stats").inner_text()
    screenshot(page, "playground")


def test_the_playground_copies_the_request_as_curl_without_the_signed_in_key(
    page: Page, console_server: RunningServer
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, ADMIN_KEY)
    page.select_option("#model", MODEL_ID)
    page.fill("#seed", "7")
    page.get_by_role("button", name="curl").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(f"curl {console_server.root_url}/v1/chat/completions")
    assert '"seed": 7' in copied and '"model": "gemma3-270m"' in copied
    assert ADMIN_KEY not in copied and "$PRIVSERVE_API_KEY" in copied


def test_a_thinking_models_reasoning_is_folded_apart_and_the_python_copy_runs(
    browser: Browser, thinking_server: RunningServer, api_key: str
) -> None:
    for page in open_page(browser, thinking_server):
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        sign_in(page, api_key)
        page.fill("#max_tokens", "80")
        page.fill("#temperature", "0.8")
        page.fill("#seed", "3")
        page.fill("#extra", json.dumps({"grammar": THINK_THEN_ANSWER}))
        page.fill("#prompt", "Is the north gate open at noon?")
        page.click("#send")
        expect(page.locator("#finish-reason")).to_have_text("finish_reason: stop")
        reasoning = page.locator(".message.assistant details.reasoning")
        expect(reasoning).to_be_visible()
        assert reasoning.get_attribute("open") is None  # folded until opened
        thought = page.locator(".reasoning-text").text_content() or ""
        answer = page.locator(".message.assistant .content").inner_text()
        assert thought.strip() and ANSWER.fullmatch(answer.strip()), (thought, answer)
        assert "<think>" not in answer and thought.strip() not in answer
        reasoning.locator("summary").click()
        screenshot(page, "playground-reasoning")

        # The same request as Python: the grammar goes in extra_body, the key in the
        # environment, and it runs as copied.
        page.get_by_role("button", name="Python").click()
        expect(page.get_by_role("button", name="Copied")).to_be_visible()
        snippet = page.evaluate("navigator.clipboard.readText()")
        assert "extra_body=" in snippet and api_key not in snippet
        ran = subprocess.run(
            [sys.executable, "-c", snippet],
            env={**os.environ, "PRIVSERVE_API_KEY": api_key},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
        assert ANSWER.fullmatch(ran.stdout.strip()), ran.stdout


def test_a_key_made_in_the_console_works_shows_in_usage_and_fails_once_revoked(
    page: Page, console_server: RunningServer
) -> None:
    sign_in(page, ADMIN_KEY)
    page.click("#nav-keys")
    page.fill("#new-key-name", "made-in-console")
    page.fill("#new-key-rpm", "100")
    page.fill("#new-key-quota", "100000/day")
    page.click("#create-key button[type=submit]")
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert secret.startswith("sk-ps-")
    row = page.locator("tr[data-key-name=made-in-console]")
    expect(row).to_contain_text("100000/day")
    screenshot(page, "keys")

    with openai.OpenAI(base_url=console_server.base_url, api_key=secret) as client:
        reply = client.chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
        )
    assert reply.usage is not None and reply.usage.completion_tokens == 3

    page.click("#nav-usage")
    bar = page.locator("#usage-by-key tr", has_text="made-in-console")
    expect(bar).to_contain_text("1 requests")
    expect(page.locator("#usage-chart canvas")).to_have_count(1)
    day_row = page.locator("#usage-table tr", has_text="made-in-console")
    expect(day_row).to_have_count(1)
    csv = page.locator("#usage-csv")
    with page.expect_download() as download:
        csv.click()
    assert "made-in-console" in Path(download.value.path()).read_text()
    screenshot(page, "usage")

    page.click("#nav-keys")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr[data-key-name=made-in-console] button.revoke").click()
    expect(page.locator("tr[data-key-name=made-in-console] .status")).to_have_text("revoked")
    with openai.OpenAI(base_url=console_server.base_url, api_key=secret) as client:
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(
                model=MODEL_ID, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
            )


def test_a_model_is_unloaded_and_loaded_from_the_models_page(
    page: Page, console_server: RunningServer
) -> None:
    sign_in(page, ADMIN_KEY)
    page.click("#nav-models")
    row = page.locator(f"tr[data-model='{MODEL_ID}']")
    expect(row.locator(".state")).to_have_text("loaded")
    screenshot(page, "models")
    row.locator("button.unload").click()
    expect(row.locator(".state")).to_have_text("unloaded")
    state = httpx.get(
        f"{console_server.base_url}/models/{MODEL_ID}",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()["state"]
    assert state == "unloaded"
    row.locator("button.load").click()
    expect(row.locator(".state")).to_have_text("loaded")
    expect(row.locator("td").nth(6)).to_contain_text("/ ")  # slots busy of a loaded engine


def test_the_integrations_page_shows_entries_with_a_placeholder_for_the_key(
    page: Page, console_server: RunningServer
) -> None:
    sign_in(page, ADMIN_KEY)
    page.click("#nav-integrations")
    model_json = page.locator("#fastgpt-model-json").inner_text()
    assert f"{console_server.base_url}/chat/completions" in model_json
    assert "YOUR_PRIVSERVE_KEY" in model_json and ADMIN_KEY not in model_json
    expect(page.locator("#one-api-channel")).to_contain_text(MODEL_ID)
    screenshot(page, "integrations")


def test_an_ordinary_key_gets_the_playground_and_its_own_usage_only(
    page: Page, api_key: str
) -> None:
    sign_in(page, api_key)
    expect(page.locator("#nav a")).to_have_text(["Playground", "Usage"])
    for hidden in ("keys", "models", "integrations"):
        page.evaluate(f"location.hash = '#/{hidden}'")  # not offered: the playground instead
        expect(page.locator("#nav-playground")).to_have_class("active")
        expect(page.locator("#conversation")).to_be_visible()
    page.click("#nav-usage")
    expect(page.locator("#usage-key")).to_have_count(0)
    expect(page.locator("#usage-by-model")).to_be_visible()


def test_the_console_speaks_chinese(page: Page) -> None:
    sign_in(page, ADMIN_KEY)
    page.select_option("#language", "zh")
    expect(page.locator("#nav a")).to_have_text(["试用", "密钥", "用量", "模型", "接入"])
    page.click("#nav-models")
    expect(page.locator(f"tr[data-model='{MODEL_ID}'] .state")).to_have_text("已加载")
    screenshot(page, "models-zh")


def test_the_console_is_served_locally_with_a_strict_policy_and_no_cors(
    console_server: RunningServer,
) -> None:
    page = httpx.get(console_server.root_url + "/ui")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    # Every script and style the page loads is this server's own.
    for path in ("/ui/static/app.js", "/ui/static/vendor/uPlot.iife.min.js"):
        assert httpx.get(console_server.root_url + path).status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")
    preflight = httpx.options(
        console_server.base_url + "/admin/v1/keys",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
