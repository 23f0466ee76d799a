"""Long-running tasks of an ingest process: the C-STORE SCP, when ``MEDAL_DIMSE_ENABLED``.

Embedded `medal up` starts them with the other services' tasks; `medal serve ingest` (which runs no
consumers) through :func:`with_background`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from medal.platform import Platform
from services.ingest.dimse import StoreScp


def background(platform: Platform) -> list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]]:
    return [StoreScp(platform).run] if platform.settings.dimse_enabled else []


def with_background(app: FastAPI) -> FastAPI:
    """Run ingest's background tasks inside ``app``'s lifespan (after its platform is built)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(root: FastAPI) -> AsyncIterator[Any]:
        async with inner(root) as state:
            root.state.platform.start_background(background(root.state.platform))
            yield state

    app.router.lifespan_context = lifespan
    return app
