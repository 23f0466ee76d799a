"""The web UI's files (built from web/ by `make setup` into static/), served at /annotation/ui/."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from medal.errors import error_body

STATIC_DIR = Path(__file__).resolve().parent / "static"


class WebUi:
    """Static files with ``index.html`` as the default page; a 503 JSON error when the UI is not built."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self.directory = directory
        self.files = StaticFiles(directory=directory, html=True, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not (self.directory / "index.html").is_file():
            message = "the web UI is not built: run `make setup` (or `make ui`) with Node.js and npm installed"
            await JSONResponse(error_body("ui-not-built", message), status_code=503)(scope, receive, send)
            return
        await self.files(scope, receive, send)
