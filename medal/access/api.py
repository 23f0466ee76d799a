"""REST for access control: the caller's rights, project API keys, project members, the audit trail.

``access_router()`` is mounted by a service (the annotation service, which owns projects): ``/v1/me``,
``/v1/keys``, ``/v1/projects/{project}/members``, ``/v1/projects/{project}/audit``, ``/v1/audit``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from medal.access import audit, keys, members
from medal.access.authorize import ProjectHidden, check, require
from medal.access.caller import Caller
from medal.access.identify import identify_caller
from medal.access.roles import ROLE_NAMES, Action
from medal.dependencies import PlatformDep, ProjectPath
from proto.types import ProjectName

if TYPE_CHECKING:
    from medal.platform import Platform

#: Whether a project exists (the owner of projects answers); None: any well-formed name is accepted.
ProjectExists = Callable[["Platform", str], Awaitable[bool]]
RoleName = Annotated[str, Field(description=f"One of {', '.join(ROLE_NAMES)}.", examples=["annotator"])]
SubjectPath = Annotated[
    str, Path(pattern=r"^[^/\x00-\x1f]{1,255}$", description="The provider's `sub` of the person or client.")
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyRequest(_Model):
    project: ProjectName
    role: RoleName
    label: str = Field(default="", max_length=100, description="What the key is for (shown in lists).")


class KeyOut(_Model):
    id: str
    project: str
    role: str
    label: str
    created_by: str
    created_at: str
    last_used_at: str | None
    revoked: bool
    revoked_at: str | None
    revoked_by: str | None


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")


class KeyList(_Model):
    keys: list[KeyOut]


class MemberRequest(_Model):
    role: RoleName
    name: str = Field(default="", max_length=200, description="Display name for the members list.")


class MemberOut(_Model):
    project: str
    subject: str
    role: str
    name: str
    granted_by: str
    granted_at: str


class MemberList(_Model):
    members: list[MemberOut]


class AuditEntryOut(_Model):
    seq: int
    at: str
    actor: str
    actor_kind: str
    actor_name: str
    action: str
    project: str | None
    subject_type: str
    subject_id: str
    details: dict[str, Any]


class AuditPage(_Model):
    entries: list[AuditEntryOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; None at the end.")


class ProjectRights(_Model):
    role: str
    actions: list[str]


class Me(_Model):
    id: str
    name: str
    kind: str
    platform_admin: bool
    platform_actions: list[str]
    projects: dict[str, ProjectRights]


CallerDep = Annotated[Caller, Depends(identify_caller)]
After = Annotated[int, Query(ge=0, description="Sequence number of the last entry already seen.")]
Limit = Annotated[int, Query(ge=1, le=audit.MAX_PAGE)]
Format = Annotated[Literal["json", "csv"], Query(description="csv: the page as a CSV download.")]


def access_router(*, project_exists: ProjectExists | None = None) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["access"])

    async def existing(platform: Platform, project: str) -> None:
        if project_exists is not None and not await project_exists(platform, project):
            raise ProjectHidden(project)

    @router.get("/me", summary="Who the caller is and what it may do in which project", response_model=Me)
    async def me(caller: CallerDep) -> dict[str, object]:
        return caller.rights()

    @router.post("/keys", status_code=201, response_model=KeyCreated, summary="Create a project API key")
    async def create_key(body: KeyRequest, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
        check(caller, Action.KEYS, body.project)
        await existing(platform, body.project)
        async with platform.db.begin() as conn:
            record, key = await keys.create_key(
                conn, project=body.project, role=body.role, label=body.label, created_by=caller.id
            )
            details = {"role": record.role.label, "label": record.label}
            await audit.record(conn, caller, "key-created", record.project, "key", record.id, details)
        return {**record.as_json(), "key": key}

    @router.get("/keys", response_model=KeyList, summary="The API keys of the projects the caller administers")
    async def list_keys(
        caller: CallerDep, platform: PlatformDep, project: Annotated[ProjectName | None, Query()] = None
    ) -> dict[str, Any]:
        if project is not None:
            check(caller, Action.KEYS, project)
            scope: frozenset[str] | None = frozenset({project})
        elif caller.platform_admin:
            scope = None
        else:
            scope = frozenset(p for p in caller.roles if caller.may(Action.KEYS, p))
        async with platform.db.connect() as conn:
            found = await keys.list_keys(conn, projects=scope)
        return {"keys": [key.as_json() for key in found]}

    @router.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke an API key (at once, for good)")
    async def revoke_key(
        key_id: Annotated[str, Path(pattern=r"^[a-z0-9]{12}$")], caller: CallerDep, platform: PlatformDep
    ) -> dict[str, Any]:
        async with platform.db.begin() as conn:
            key = await keys.get_key(conn, key_id)
            if not caller.knows(key.project):
                raise keys.KeyNotFound(f"no API key with id {key_id}")
            check(caller, Action.KEYS, key.project)
            revoked = await keys.revoke_key(conn, key_id, revoked_by=caller.id)
            if not key.revoked:
                await audit.record(conn, caller, "key-revoked", key.project, "key", key.id)
        return revoked.as_json()

    members_path = "/projects/{project}/members"

    @router.get(members_path, response_model=MemberList, summary="Who has which role in the project")
    async def list_members(
        project: ProjectPath, platform: PlatformDep, _: Annotated[Caller, Depends(require(Action.MEMBERS))]
    ) -> dict[str, Any]:
        async with platform.db.connect() as conn:
            found = await members.list_members(conn, project)
        return {"members": [m.as_json() for m in found]}

    @router.put(members_path + "/{subject}", response_model=MemberOut, summary="Grant or change a role")
    async def grant(
        project: ProjectPath,
        subject: SubjectPath,
        body: MemberRequest,
        platform: PlatformDep,
        caller: Annotated[Caller, Depends(require(Action.MEMBERS))],
    ) -> dict[str, Any]:
        await existing(platform, project)
        async with platform.db.begin() as conn:
            member = await members.grant(
                conn, project=project, subject=subject, role=body.role, granted_by=caller.id, name=body.name
            )
            await audit.record(conn, caller, "member-granted", project, "member", subject, {"role": member.role.label})
        return member.as_json()

    @router.delete(members_path + "/{subject}", response_model=MemberOut, summary="Take a member's role away")
    async def revoke_member(
        project: ProjectPath,
        subject: SubjectPath,
        platform: PlatformDep,
        caller: Annotated[Caller, Depends(require(Action.MEMBERS))],
    ) -> dict[str, Any]:
        async with platform.db.begin() as conn:
            member = await members.revoke(conn, project, subject)
            await audit.record(conn, caller, "member-revoked", project, "member", subject, {"role": member.role.label})
        return member.as_json()

    @router.get("/projects/{project}/audit", response_model=AuditPage, summary="The project's audit trail")
    async def project_audit(
        project: ProjectPath,
        platform: PlatformDep,
        _: Annotated[Caller, Depends(require(Action.AUDIT))],
        after: After = 0,
        limit: Limit = 100,
        format: Format = "json",
    ) -> Any:
        return await _audit_page(platform, project, after, limit, format)

    @router.get("/audit", response_model=AuditPage, summary="Every project's audit trail (platform admins)")
    async def platform_audit(
        platform: PlatformDep,
        _: Annotated[Caller, Depends(require(Action.AUDIT, project=None))],
        after: After = 0,
        limit: Limit = 100,
        format: Format = "json",
    ) -> Any:
        return await _audit_page(platform, None, after, limit, format)

    return router


async def _audit_page(platform: Platform, project: str | None, after: int, limit: int, format: str) -> Any:
    async with platform.db.connect() as conn:
        entries = await audit.read(conn, project=project, after=after, limit=limit)
    if format == "csv":
        name = f"audit-{project or 'platform'}-after-{after}.csv"
        return Response(
            audit.as_csv(entries),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    next_after = entries[-1].seq if len(entries) == limit else None
    return {"entries": [e.as_json() for e in entries], "next_after": next_after}


class SignInConfig(_Model):
    enabled: bool = Field(description="False: no identity provider; API keys only (or the open laptop mode).")
    issuer: str | None
    client_id: str | None = Field(description="The public client the web UI signs in with (code + PKCE).")
    audience: str | None
    authorization_endpoint: str | None
    token_endpoint: str | None


def sign_in_router() -> APIRouter:
    """``/v1/auth/config``: what a browser needs to start the code + PKCE sign-in. Mount it unguarded."""
    router = APIRouter(prefix="/v1", tags=["access"])

    @router.get("/auth/config", response_model=SignInConfig, summary="How to sign in (no credentials needed)")
    async def config(platform: PlatformDep) -> dict[str, Any]:
        from medal.access.identify import access_context

        validator = access_context(platform).validator
        if validator is None:
            return dict.fromkeys(SignInConfig.model_fields, None) | {"enabled": False}
        document = await validator.discovery()
        return {
            "enabled": True,
            "issuer": validator.issuer,
            "client_id": platform.settings.oidc_client_id,
            "audience": validator.audience,
            "authorization_endpoint": document.get("authorization_endpoint"),
            "token_endpoint": document.get("token_endpoint"),
        }

    return router
