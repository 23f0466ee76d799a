"""Access control: who is calling (API keys, platform keys, OpenID Connect tokens), roles per project,
what each role may do, project isolation (404 for a foreign project), the audit trail, sign-in limits.

A route declares what it does with ``require(Action.X)`` (see :mod:`medal.access.authorize`).
"""

from medal.access.authorize import ProjectHidden, authorised_caller, check, from_path, require
from medal.access.caller import LOCAL_USER, Caller, CallerKind, acting, service_actor
from medal.access.identify import Unauthenticated, identify_caller
from medal.access.roles import PLATFORM_ADMIN, RIGHTS, Action, Role, UnknownRole, actions_of, allows

__all__ = [
    "LOCAL_USER",
    "PLATFORM_ADMIN",
    "RIGHTS",
    "Action",
    "Caller",
    "CallerKind",
    "ProjectHidden",
    "Role",
    "Unauthenticated",
    "UnknownRole",
    "acting",
    "actions_of",
    "allows",
    "authorised_caller",
    "check",
    "from_path",
    "identify_caller",
    "require",
    "service_actor",
]
