"""``require(action)``: the dependency a route declares to say what it does, checked against the caller's role.

- no or an invalid credential: 401 (from :func:`~medal.access.identify.identify_caller`);
- a project the caller has no role in (or that does not exist): 404 ``project-not-found``, the same
  answer as for a project that does not exist, so names do not leak;
- a project the caller has a role in, but one without the right: 403 ``forbidden`` naming the action;
- a platform-wide action (``create-project``) without platform admin: 403.

The project comes from the ``{project}`` path parameter by default, or from a resolver for routes that
name an object instead (``/images/{image_id}``): ``require(Action.VIEW, project=from_path("image_id",
image_project))`` where ``image_project(platform, image_id)`` returns the object's project or None
(an object that does not exist answers 404 ``not-found``, for callers of every role alike).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from medal.access.caller import Caller
from medal.access.identify import identify_caller
from medal.access.roles import RIGHTS, Action
from medal.domain_errors import NotFound
from medal.errors import ApiError
from proto.types import UUID_PATTERN

if TYPE_CHECKING:
    from medal.platform import Platform

#: Finds the project a request concerns: its name, or None when the object it names does not exist.
ProjectResolver = Callable[[Request], Awaitable[str | None]]
#: A service's lookup of an object's project by id (it reads its own tables).
ProjectLookup = Callable[["Platform", str], Awaitable[str | None]]


class ProjectHidden(NotFound):
    """What a caller without a role in a project sees: exactly a missing project."""

    code = "project-not-found"

    def __init__(self, project: str) -> None:
        super().__init__(f"no project named {project}")


class ObjectNotFound(NotFound):
    code = "not-found"


class Forbidden(ApiError):
    def __init__(self, action: Action, project: str | None) -> None:
        where = f"in {project}" if project else "on this platform"
        needed = RIGHTS[action]
        who = f"the {needed.label} role or higher" if needed is not None else "a platform admin"
        super().__init__(
            403, "forbidden", f"{action.value} {where} needs {who}", [{"action": action.value, "project": project}]
        )


async def project_from_path(request: Request) -> str | None:
    """The ``{project}`` path parameter."""
    project = request.path_params.get("project")
    if not isinstance(project, str):
        raise RuntimeError(f"{request.url.path}: require() without project= needs a {{project}} path parameter")
    return project


class ObjectResolver:
    """Finds the project of the object a route names (``from_path``). An object of a project the caller
    has no role in answers exactly as a missing one (``missing(id)``: the service's own not-found), so a
    stranger learns neither that it exists nor which project holds it."""

    def __init__(
        self, parameter: str, lookup: ProjectLookup, pattern: str | None, missing: Callable[[str], Exception] | None
    ) -> None:
        self.parameter = parameter
        self.lookup = lookup
        self.shape = re.compile(pattern) if pattern else None
        self.missing = missing

    def value(self, request: Request) -> str:
        value = request.path_params.get(self.parameter)
        if not isinstance(value, str):
            raise RuntimeError(f"{request.url.path} has no {{{self.parameter}}} path parameter")
        return value

    def not_found(self, request: Request) -> Exception:
        if self.missing is not None:
            return self.missing(self.value(request))
        return ObjectNotFound("the object this request names does not exist")

    async def __call__(self, request: Request) -> str | None:
        value = self.value(request)
        if self.shape is not None and not self.shape.fullmatch(value):
            details = [{"loc": ["path", self.parameter]}]
            raise ApiError(422, "invalid-request", f"{self.parameter} is not a well-formed id", details)
        return await self.lookup(request.app.state.platform, value)


def from_path(
    parameter: str,
    lookup: ProjectLookup,
    pattern: str | None = UUID_PATTERN,
    missing: Callable[[str], Exception] | None = None,
) -> ObjectResolver:
    """A resolver for routes naming an object: ``lookup(platform, <path parameter>)`` gives its project.

    A value that does not match ``pattern`` (a medal id by default) names nothing: 422, as the route's
    own validation would answer (it runs after this check). ``missing(id)``: the error of an object that
    is not there (default: 404 ``not-found``), also the answer for one in a project hidden from the caller.
    """
    return ObjectResolver(parameter, lookup, pattern, missing)


def check(caller: Caller, action: Action, project: str | None) -> None:
    """Raise the refusal of ``caller`` doing ``action`` in ``project`` (None: platform-wide), or return."""
    if project is None:
        if not caller.may(action):
            raise Forbidden(action, None)
        return
    if not caller.knows(project):
        raise ProjectHidden(project)
    if not caller.may(action, project):
        raise Forbidden(action, project)


def require(action: Action, *, project: ProjectResolver | None = project_from_path) -> Callable[..., Awaitable[Caller]]:
    """A dependency that returns the caller once it may do ``action`` in the route's project.

    ``project=None`` declares a platform-wide action (no project: e.g. ``create-project``, or a list the
    route filters with ``caller.project_filter``).
    """
    if action not in RIGHTS:
        raise ValueError(f"{action!r} is not an Action")

    async def authorised(request: Request, caller: Annotated[Caller, Depends(identify_caller)]) -> Caller:
        if project is None:
            check(caller, action, None)
            return caller
        name = await project(request)
        if isinstance(project, ObjectResolver) and (name is None or not caller.knows(name)):
            raise project.not_found(request)
        if name is None:
            raise ObjectNotFound("the object this request names does not exist")
        check(caller, action, name)
        request.state.project = name
        return caller

    authorised.__name__ = f"require_{action.name.lower()}"
    return authorised


def authorised_caller(action: Action, *, project: ProjectResolver | None = project_from_path) -> object:
    """``Depends(require(action, project=…))``, for ``Annotated[Caller, authorised_caller(Action.LABEL)]``."""
    return Depends(require(action, project=project))
