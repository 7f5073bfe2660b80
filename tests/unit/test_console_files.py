"""The console's files as shipped: every word it shows exists in English and Chinese, and
every script and style it loads is in the package (none from a CDN)."""

from __future__ import annotations

import re

from privserve.api.routes.console import CONSOLE_DIR

ENTRY = re.compile(r"(\w+): \"")
CALL = re.compile(r"\bt\(\"(\w+)\"")
DYNAMIC = {
    "column_": ["model", "capabilities", "state", "precision", "size", "context",
                "slots_busy", "queue", "tokens_per_second", "prefix_hits", "kv_cache"],
    "page_": ["playground", "keys", "usage", "models", "integrations"],
    "state_": ["loaded", "loading", "unloaded"],
    "since_": ["24h", "7d", "30d", "90d"],
    "per_": ["day", "key", "model"],
}  # fmt: skip


def languages() -> dict[str, set[str]]:
    text = (CONSOLE_DIR / "i18n.js").read_text()
    english, chinese = text.split("\n  zh: {\n")
    return {"en": set(ENTRY.findall(english)), "zh": set(ENTRY.findall(chinese))}


def test_every_word_the_console_shows_is_in_both_languages() -> None:
    words = languages()
    assert words["en"] == words["zh"]
    scripts = [*CONSOLE_DIR.glob("*.js"), *CONSOLE_DIR.glob("pages/*.js")]
    used = {key for script in scripts for key in CALL.findall(script.read_text())}
    used |= {prefix + name for prefix, names in DYNAMIC.items() for name in names}
    assert used - words["en"] == set()


def test_the_page_loads_only_files_of_the_package() -> None:
    page = (CONSOLE_DIR / "index.html").read_text()
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert loaded and all(path.startswith("/ui/static/") for path in loaded)
    for path in loaded:
        assert (CONSOLE_DIR / path.removeprefix("/ui/static/")).is_file(), path
    for script in [*CONSOLE_DIR.glob("*.js"), *CONSOLE_DIR.glob("pages/*.js")]:
        assert "https://" not in script.read_text() and "http://" not in script.read_text()
