"""Roles per project and the one table of what each may do: a pure function every route's check uses.

annotator < reviewer < project-admin within a project; a platform admin may do everything in every
project, plus what concerns no single project (creating and deleting projects).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Role(IntEnum):
    """A caller's role in one project; a higher role has every right of a lower one."""

    ANNOTATOR = 1
    REVIEWER = 2
    PROJECT_ADMIN = 3

    @property
    def label(self) -> str:
        """The name used in tokens, keys, the database and the API: annotator, reviewer, project-admin."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, name: str) -> Role:
        """``annotator``, ``reviewer`` or ``project-admin`` (``admin`` too); ``UnknownRole`` otherwise."""
        normalised = name.strip().lower().replace("_", "-")
        if normalised == "admin":
            normalised = "project-admin"
        for role in cls:
            if role.label == normalised:
                return role
        raise UnknownRole(name)


ROLE_NAMES: tuple[str, ...] = tuple(role.label for role in Role)
#: The role name that makes a caller platform admin (in a token's roles, without a project).
PLATFORM_ADMIN = "platform-admin"


class UnknownRole(ValueError):
    """A role name medal does not know (the message names it but never a credential)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown role {name[:40]!r}: one of {', '.join(ROLE_NAMES)}")
        self.name = name


class Action(StrEnum):
    """What a route does to a project: every route declares exactly one (see :data:`RIGHTS`)."""

    VIEW = "view"  # see the project, its images, its own tasks and masks, its models' status
    LEASE = "lease"  # lease the next task
    LABEL = "label"  # submit a mask for a task the caller holds
    SKIP_OWN = "skip-own"  # give back or skip a task the caller holds
    REVIEW = "review"  # see everyone's tasks and masks, the review queue
    CORRECT_ANY = "correct-any"  # write a new version of anyone's mask
    APPROVE = "approve"  # approve or reject a mask
    SETTINGS = "settings"  # change the project's settings (labels, batch size, strategy)
    ROUNDS = "rounds"  # open, close, skip or retry a round
    TRAIN = "train"  # start or cancel training
    MODELS = "models"  # promote or roll back a model version
    EXPORT = "export"  # export labels and masks
    INGEST = "ingest"  # add images (DICOM, STOW-RS, folders)
    QUARANTINE_RELEASE = "quarantine-release"  # release an instance held for burned-in PHI review
    MEMBERS = "members"  # grant and revoke roles in the project
    KEYS = "keys"  # create, list and revoke the project's API keys
    AUDIT = "audit"  # read and export the project's audit trail
    CREATE_PROJECT = "create-project"  # platform admin only
    DELETE_PROJECT = "delete-project"  # platform admin only


#: The lowest role that may perform each action in a project; None: platform admin only.
RIGHTS: dict[Action, Role | None] = {
    Action.VIEW: Role.ANNOTATOR,
    Action.LEASE: Role.ANNOTATOR,
    Action.LABEL: Role.ANNOTATOR,
    Action.SKIP_OWN: Role.ANNOTATOR,
    Action.REVIEW: Role.REVIEWER,
    Action.CORRECT_ANY: Role.REVIEWER,
    Action.APPROVE: Role.REVIEWER,
    Action.SETTINGS: Role.PROJECT_ADMIN,
    Action.ROUNDS: Role.PROJECT_ADMIN,
    Action.TRAIN: Role.PROJECT_ADMIN,
    Action.MODELS: Role.PROJECT_ADMIN,
    Action.EXPORT: Role.PROJECT_ADMIN,
    Action.INGEST: Role.PROJECT_ADMIN,
    Action.QUARANTINE_RELEASE: Role.PROJECT_ADMIN,
    Action.MEMBERS: Role.PROJECT_ADMIN,
    Action.KEYS: Role.PROJECT_ADMIN,
    Action.AUDIT: Role.PROJECT_ADMIN,
    Action.CREATE_PROJECT: None,
    Action.DELETE_PROJECT: None,
}


def allows(role: Role | None, action: Action, *, platform_admin: bool = False) -> bool:
    """Whether a caller with ``role`` in a project (None: no role there) may perform ``action`` in it."""
    if platform_admin:
        return True
    needed = RIGHTS[action]
    return role is not None and needed is not None and role >= needed


def actions_of(role: Role | None, *, platform_admin: bool = False) -> list[str]:
    """Every action ``role`` allows, in declaration order (what the web UI shows or hides)."""
    return [action.value for action in Action if allows(role, action, platform_admin=platform_admin)]
