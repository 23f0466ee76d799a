"""What every service's FastAPI app has: errors, caller identity, health, readiness, metrics, safe headers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from medal.auth import identify_caller
from medal.errors import install_error_handlers

HTTP_REQUESTS = Counter("medal_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("medal_http_request_seconds", "HTTP request latency", ["service", "route"])


#: The API documentation pages load Swagger UI / ReDoc from a CDN: they get no Content-Security-Policy.
DOC_PAGES = ("/docs", "/redoc")
#: Anything that is not a page (JSON, PNG, zip): nothing may run, nothing may frame it.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def ui_policy(issuer: str | None) -> str:
    """The web UI's Content-Security-Policy: its own scripts and styles only; the identity provider is
    the one other origin it talks to (the token endpoint) and navigates to (the sign-in page)."""
    provider = ""
    if issuer:
        parts = urlsplit(issuer)
        provider = f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src 'self'{provider}; form-action 'self'{provider}; frame-ancestors 'none'; "
        "base-uri 'none'; object-src 'none'"
    )


def security_headers(request: Request, response: Response) -> None:
    """nosniff, no referrer, no framing on every answer; a Content-Security-Policy on all but the API docs."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    path = request.url.path.rstrip("/")
    if path.endswith(DOC_PAGES) or "Content-Security-Policy" in headers:
        return
    if "ui" in path.split("/"):
        platform = getattr(request.app.state, "platform", None)
        issuer = platform.settings.oidc_issuer if platform is not None else None
        headers["Content-Security-Policy"] = ui_policy(issuer)
    else:
        headers["Content-Security-Policy"] = API_POLICY


def install_security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def safe_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        security_headers(request, response)
        return response


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
    install_security_headers(app)

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        HTTP_REQUESTS.labels(name, request.method, route, str(response.status_code)).inc()
        HTTP_SECONDS.labels(name, route).observe(time.perf_counter() - started)
        return response

    return app
