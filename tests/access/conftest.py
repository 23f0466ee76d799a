"""Fixtures of the access tests: a real OIDC provider process and a small app guarded by medal.access."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import SecretStr

from medal.access import Action, Caller, from_path, require
from medal.access.api import access_router, sign_in_router
from medal.db.migrate import upgrade
from medal.dependencies import CallerDep, ProjectPath
from medal.local_server import serve_in_thread
from medal.platform import Platform
from medal.settings import Settings
from medal.web import service_app
from tests.access.provider import AUDIENCE, Provider, install
from tests.access.world import World, built_world
from tests.conftest import unavailable

PLATFORM_KEY = "platform-key-for-the-access-tests"
PROJECTS = {"alpha", "beta"}
IMAGES = {"0" * 8 + "-0000-4000-8000-" + "0" * 12: "alpha", "1" * 8 + "-1111-4111-8111-" + "1" * 12: "beta"}
MACHINES: list[dict[str, Any]] = [
    {
        "client_id": "alpha-annotator",
        "client_secret": "a" * 32,
        "claims": {"realm_access": {"roles": ["medal:alpha:annotator", "offline_access"]}},
    },
    {
        "client_id": "alpha-admin",
        "client_secret": "b" * 32,
        "claims": {"realm_access": {"roles": ["medal:alpha:project-admin"]}},
    },
    {
        "client_id": "operator",
        "client_secret": "c" * 32,
        "claims": {"realm_access": {"roles": ["medal:platform-admin"]}},
    },
    {"client_id": "no-roles", "client_secret": "d" * 32, "claims": {}},
    {
        "client_id": "strange-role",
        "client_secret": "e" * 32,
        "claims": {"realm_access": {"roles": ["medal:alpha:overlord"]}},
    },
    {
        "client_id": "short-lived",
        "client_secret": "f" * 32,
        "ttl": 1,
        "claims": {"realm_access": {"roles": ["medal:alpha:annotator"]}},
    },
]
PEOPLE = {
    "rita": {"name": "Rita Reviewer", "claims": {"realm_access": {"roles": ["medal:beta:reviewer"]}}},
    "nora": {"name": "Nora Newcomer", "claims": {}},
}


@pytest.fixture(scope="session")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    missing = install()
    if missing:
        unavailable(missing)
    the_provider = Provider(tmp_path_factory.mktemp("oidc"), MACHINES, PEOPLE)
    the_provider.start()
    try:
        yield the_provider
    finally:
        the_provider.stop()


async def image_project(_platform: Platform, image_id: str) -> str | None:
    return IMAGES.get(image_id)


async def project_exists(_platform: Platform, name: str) -> bool:
    return name in PROJECTS


def demo_router() -> APIRouter:
    """Routes of each kind phase 2 guards: in a project, on an object, platform-wide, a filtered list."""
    router = APIRouter(prefix="/v1")

    @router.get("/projects")
    async def projects(caller: CallerDep) -> dict[str, list[str]]:
        return {"projects": caller.visible(sorted(PROJECTS))}

    @router.post("/projects", status_code=201)
    async def create(
        caller: Annotated[Caller, Depends(require(Action.CREATE_PROJECT, project=None))],
    ) -> dict[str, str]:
        return {"by": caller.id}

    @router.get("/projects/{project}/images")
    async def images(project: ProjectPath, caller: Annotated[Caller, Depends(require(Action.VIEW))]) -> dict[str, str]:
        return {"project": project, "by": caller.id}

    @router.post("/projects/{project}/masks/{mask}/approve")
    async def approve(
        project: ProjectPath, caller: Annotated[Caller, Depends(require(Action.APPROVE))]
    ) -> dict[str, str]:
        return {"project": project, "by": caller.id}

    @router.post("/projects/{project}/rounds")
    async def rounds(
        project: ProjectPath, caller: Annotated[Caller, Depends(require(Action.ROUNDS))]
    ) -> dict[str, str]:
        return {"project": project, "by": caller.id}

    @router.get("/images/{image_id}")
    async def image(
        image_id: str,
        caller: Annotated[Caller, Depends(require(Action.VIEW, project=from_path("image_id", image_project)))],
    ) -> dict[str, str]:
        return {"image": image_id, "by": caller.id}

    return router


def guarded_app(settings: Settings) -> FastAPI:
    """The access router and the demo routes as a service app, mounted at /annotation like `medal up` does."""
    inner = service_app("annotation", "access tests", [access_router(project_exists=project_exists), demo_router()])
    inner.include_router(sign_in_router())  # unguarded, as the health routes are

    @asynccontextmanager
    async def lifespan(root: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade, settings.effective_database_url)
        platform = Platform.build(settings, ["annotation"])
        root.state.platform = inner.state.platform = platform
        try:
            yield
        finally:
            await platform.stop()

    root = FastAPI(lifespan=lifespan)
    root.mount("/annotation", inner)
    return root


@dataclass
class Served:
    base: str
    app: FastAPI
    settings: Settings

    @property
    def platform(self) -> Platform:
        platform: Platform = self.app.state.platform
        return platform


def access_settings(data_dir: Path, provider: Provider | None = None, **extra: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": data_dir, "api_keys": [SecretStr(PLATFORM_KEY)], "deid_secret": "x" * 32}
    if provider is not None:
        values |= {"oidc_issuer": provider.issuer, "oidc_audience": AUDIENCE, "oidc_leeway_seconds": 0}
    return Settings.model_validate(values | extra)


@pytest.fixture(scope="module")
def served(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = access_settings(
        tmp_path_factory.mktemp("access"), provider, oidc_jwks_min_refresh_seconds=1, auth_failures_burst=1000
    )
    app = guarded_app(settings)
    with serve_in_thread(app) as base:
        yield Served(base + "/annotation", app, settings)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Every service in one process with two real projects (tests.access.world): built once, shared."""
    with built_world(tmp_path_factory.mktemp("world")) as built:
        yield built
