"""Who is calling: a subject, how it proved it, and its role in each project."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

from medal.access.roles import Action, Role, actions_of, allows

CallerKind = Literal["local", "api-key", "oidc", "platform-key", "service"]


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request.

    ``id`` is who acts (written to ``leased_by``, ``released_by``, the audit trail): ``local`` for the
    open laptop mode, ``key-<key id>`` for a project key, ``key-<hash prefix>`` for a key of
    ``MEDAL_API_KEYS``, the token's subject for a person or a client signed in with the provider.
    """

    id: str
    kind: CallerKind
    name: str = ""
    roles: Mapping[str, Role] = field(default_factory=dict)
    platform_admin: bool = False

    @property
    def display_name(self) -> str:
        return self.name or self.id

    def role_in(self, project: str) -> Role | None:
        """The caller's role in ``project``; None when it has none (a platform admin may still act)."""
        return self.roles.get(project)

    def knows(self, project: str) -> bool:
        """Whether ``project`` exists for this caller at all (otherwise it answers 404, not 403)."""
        return self.platform_admin or project in self.roles

    def may(self, action: Action, project: str | None = None) -> bool:
        """Whether the caller may perform ``action`` in ``project`` (None: a platform-wide action)."""
        role = self.roles.get(project) if project is not None else None
        return allows(role, action, platform_admin=self.platform_admin)

    def visible(self, projects: Iterable[str]) -> list[str]:
        """The names among ``projects`` this caller may see (for lists: filter, never 403)."""
        return [name for name in projects if self.knows(name)]

    @property
    def project_filter(self) -> frozenset[str] | None:
        """For list queries: None when every project is visible, else the names visible to this caller."""
        return None if self.platform_admin else frozenset(self.roles)

    def rights(self) -> dict[str, object]:
        """What the web UI needs to show or hide: who, and what the caller may do in which project."""
        return {
            "id": self.id,
            "name": self.display_name,
            "kind": self.kind,
            "platform_admin": self.platform_admin,
            "platform_actions": actions_of(None, platform_admin=self.platform_admin),
            "projects": {
                project: {"role": role.label, "actions": actions_of(role, platform_admin=self.platform_admin)}
                for project, role in sorted(self.roles.items())
            },
        }


#: Every caller when no identity provider and no API keys are configured (`medal up` on a laptop).
LOCAL_USER = Caller(id="local", kind="local", name="local user", platform_admin=True)


#: The caller of the request being handled (set by ``identify_caller``), for use cases given only an id.
current_caller: ContextVar[Caller | None] = ContextVar("medal_current_caller", default=None)


def acting(caller: Caller | str | None) -> Caller:
    """The :class:`Caller` an audit row names: ``caller`` itself, or for an id (older call sites pass
    ``caller.id``) the request's caller when it has that id, else a caller known by its id alone."""
    if isinstance(caller, Caller):
        return caller
    current = current_caller.get()
    if current is not None and (caller is None or current.id == caller):
        return current
    if caller is None:
        return service_actor("medal")  # no request: a bus handler or a background task acts
    return Caller(id=caller, kind="local" if caller == "local" else "api-key")


def service_actor(service: str) -> Caller:
    """Who acts when a service does something on its own (the trainer trained a model): for audit rows."""
    return Caller(id=f"service:{service}", kind="service", name=f"medal {service}")


def merge_roles(*sources: Mapping[str, Role]) -> dict[str, Role]:
    """The highest role per project over several sources (the token's claims and the membership table)."""
    merged: dict[str, Role] = {}
    for source in sources:
        for project, role in source.items():
            if role > merged.get(project, 0):
                merged[project] = role
    return merged
