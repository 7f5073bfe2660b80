"""`/ui`: the web console, static files served by the app itself (no CDN, so it works
offline). It signs in with an API key it keeps in the page's memory and calls the same API
every client does."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

CONSOLE_DIR = Path(str(files("privserve") / "console"))

# The page runs only its own scripts and talks only to this server; no page may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _ConsoleFiles(StaticFiles):
    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        return response


router = APIRouter(include_in_schema=False)


@router.get("/ui")
async def console_page() -> FileResponse:
    return FileResponse(CONSOLE_DIR / "index.html", headers=SECURITY_HEADERS)


@router.get("/ui/")
async def console_page_slash() -> RedirectResponse:
    return RedirectResponse("/ui")


def install_console(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/ui/static", _ConsoleFiles(directory=CONSOLE_DIR), name="console")
