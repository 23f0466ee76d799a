"""What every service's FastAPI app has: errors, caller identity, health, readiness, metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from medal.auth import identify_caller
from medal.errors import install_error_handlers

HTTP_REQUESTS = Counter("medal_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("medal_http_request_seconds", "HTTP request latency", ["service", "route"])


def health_router() -> APIRouter:
    """``/healthz`` (process alive), ``/readyz`` (dependencies reachable), ``/metrics`` (Prometheus)."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers (no dependency checks)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: database, bus and object storage are reachable")
    async def readyz(request: Request) -> JSONResponse:
        checks = await request.app.state.platform.check()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ready" if ready else "not-ready", "checks": checks}, 200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def service_app(name: str, summary: str, routers: Sequence[APIRouter], version: str = "0.1.0") -> FastAPI:
    """A service's app. Every router passes through :func:`identify_caller`."""
    app = FastAPI(title=f"medal {name}", summary=summary, version=version)
    install_error_handlers(app)
    app.include_router(health_router())
    for router in routers:
        app.include_router(router, dependencies=[Depends(identify_caller)])

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        HTTP_REQUESTS.labels(name, request.method, route, str(response.status_code)).inc()
        HTTP_SECONDS.labels(name, route).observe(time.perf_counter() - started)
        return response

    return app
