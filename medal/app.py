"""Builds the HTTP process: one or all services mounted under /<service>, sharing one Platform."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from medal.bus import Bus, Handler
from medal.db.migrate import upgrade
from medal.errors import install_error_handlers
from medal.platform import BackgroundTask, Platform
from medal.settings import SERVICE_NAMES, Settings
from medal.unit_of_work import Consumer
from medal.web import health_router, install_security_headers
from proto.topology import SERVICE_QUEUE


def service_factory(name: str) -> Any:
    """The service's ``create_app``, imported only when that service runs (ingest never loads torch)."""
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICE_NAMES)}")
    return importlib.import_module(f"services.{name}.main").create_app


def service_consumer(name: str) -> Consumer[Any] | None:
    """The service's bus handlers (``consumer`` of ``services.<name>.handlers``); None for a service without."""
    if SERVICE_QUEUE.get(name) is None:
        return None
    consumer: Consumer[Any] = importlib.import_module(f"services.{name}.handlers").consumer
    return consumer


def service_handlers(name: str, platform: Platform) -> Mapping[str, Handler]:
    consumer = service_consumer(name)
    return {} if consumer is None else consumer.bind(platform)


def service_background(name: str, platform: Platform) -> list[BackgroundTask]:
    """The service's long-running tasks: ``background(platform)`` of ``services.<name>.background``, if any."""
    module_name = f"services.{name}.background"
    if importlib.util.find_spec(module_name) is None:
        return []
    tasks: list[BackgroundTask] = importlib.import_module(module_name).background(platform)
    return list(tasks)


def wants_page(accept: str) -> bool:
    """A browser's navigation asks for text/html first; API clients ask for JSON or anything (*/*)."""
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]
    return "text/html" in kinds and (
        "application/json" not in kinds or kinds.index("text/html") < kinds.index("application/json")
    )


def build_app(
    settings: Settings,
    services: Sequence[str] = SERVICE_NAMES,
    *,
    consume: bool,
    migrate: bool = False,
    bus: Bus | None = None,
) -> FastAPI:
    """``consume``: also run the services' queue consumers in this process (embedded mode)."""
    apps = {name: service_factory(name)() for name in services}

    @asynccontextmanager
    async def lifespan(root: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await asyncio.to_thread(upgrade, settings.effective_database_url)
        platform = Platform.build(settings, list(services), bus=bus)
        root.state.platform = platform
        for app in apps.values():
            app.state.platform = platform
        platform.start_relay()
        if consume:
            for name in services:
                if name in SERVICE_QUEUE:
                    platform.start_consumer(
                        SERVICE_QUEUE[name], service_handlers(name, platform), prefetch=settings.bus_prefetch
                    )
                platform.start_background(service_background(name, platform))
        else:
            # A service without a queue has no worker process: its background tasks (ingest's C-STORE
            # SCP) run where it is served. The others' run in their workers (`medal worker X`).
            for name in services:
                if name not in SERVICE_QUEUE:
                    platform.start_background(service_background(name, platform))
        try:
            yield
        finally:
            await platform.stop()

    root = FastAPI(title="medal", summary="Medical active labelling platform", lifespan=lifespan)
    install_error_handlers(root)
    install_security_headers(root)
    root.include_router(health_router())

    @root.get(
        "/",
        summary="A browser lands on the web UI; other clients (Accept: application/json) get the services and docs",
        response_model=None,
    )
    async def index(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        if "annotation" in apps and wants_page(request.headers.get("accept", "")):
            return RedirectResponse("/annotation/ui/", status_code=303)
        return JSONResponse(
            {
                "medal": "0.1.0",
                "services": {name: {"api": f"{base}/{name}", "docs": f"{base}/{name}/docs"} for name in apps},
                **({"ui": f"{base}/annotation/ui/"} if "annotation" in apps else {}),
            }
        )

    if "annotation" in apps:

        @root.get("/ui", include_in_schema=False)
        async def web_ui() -> RedirectResponse:
            return RedirectResponse("/annotation/ui/")

    for name, app in apps.items():
        root.mount(f"/{name}", app)
    return root
