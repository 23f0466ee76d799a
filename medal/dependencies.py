"""Typed FastAPI dependencies every service's routes use: the platform, the caller, path parameters."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Path, Request

from medal.auth import Caller, identify_caller
from medal.platform import Platform
from proto.types import PROJECT_DESCRIPTION, PROJECT_PATTERN, UUID_PATTERN


def get_platform(request: Request) -> Platform:
    """The adapters of this process (set by the composition root in medal.app's lifespan)."""
    return cast(Platform, request.app.state.platform)


#: The process's database, object store, bus and relay.
PlatformDep = Annotated[Platform, Depends(get_platform)]
#: Who is calling (authenticated by the one caller dependency every router passes through).
CallerDep = Annotated[Caller, Depends(identify_caller)]
#: ``{project}`` in a route's path.
ProjectPath = Annotated[str, Path(pattern=PROJECT_PATTERN, description=PROJECT_DESCRIPTION)]
#: A medal id (image, round, task, mask, model version …) in a route's path.
IdPath = Annotated[str, Path(pattern=UUID_PATTERN, description="A medal id (lower-case UUID).")]
