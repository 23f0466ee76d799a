"""The rights table and the roles claim: pure functions phase 2 applies to every route."""

from __future__ import annotations

import pytest

from medal.access.caller import Caller, merge_roles
from medal.access.oidc import claim_at, roles_from_claim
from medal.access.roles import RIGHTS, Action, Role, UnknownRole, actions_of, allows


def test_each_role_has_every_right_of_the_roles_below_it() -> None:
    for action in Action:
        granted = [allows(role, action) for role in Role]
        assert granted == sorted(granted), action  # False… then True…


def test_the_rights_of_each_role() -> None:
    assert actions_of(Role.ANNOTATOR) == ["view", "lease", "label", "skip-own"]
    assert set(actions_of(Role.REVIEWER)) - set(actions_of(Role.ANNOTATOR)) == {"review", "correct-any", "approve"}
    admin_only = set(actions_of(Role.PROJECT_ADMIN)) - set(actions_of(Role.REVIEWER))
    assert admin_only == {
        "settings",
        "rounds",
        "train",
        "models",
        "export",
        "ingest",
        "quarantine-release",
        "members",
        "keys",
        "audit",
    }
    assert not any(allows(role, Action.CREATE_PROJECT) for role in Role)
    assert allows(None, Action.DELETE_PROJECT, platform_admin=True)
    assert not allows(None, Action.VIEW)
    assert set(RIGHTS) == set(Action)


def test_role_names_parse_and_unknown_ones_are_refused() -> None:
    assert Role.parse("Project_Admin") is Role.PROJECT_ADMIN and Role.parse("admin") is Role.PROJECT_ADMIN
    assert Role.REVIEWER.label == "reviewer"
    with pytest.raises(UnknownRole, match="overlord"):
        Role.parse("overlord")


def test_the_roles_claim_as_names_or_as_an_object() -> None:
    claims = {
        "realm_access": {
            "roles": ["offline_access", "medal:alpha:annotator", "medal:alpha:reviewer", "medal:beta:admin"]
        }
    }
    assert roles_from_claim(claim_at(claims, "realm_access.roles")) == (
        {"alpha": Role.REVIEWER, "beta": Role.PROJECT_ADMIN},
        False,
    )
    assert roles_from_claim(["medal:platform-admin"]) == ({}, True)
    assert roles_from_claim({"alpha": "annotator", "platform-admin": True}) == ({"alpha": Role.ANNOTATOR}, True)
    assert roles_from_claim("medal:alpha:reviewer other") == ({"alpha": Role.REVIEWER}, False)
    assert roles_from_claim(["hospital:alpha:admin"], prefix="hospital") == ({"alpha": Role.PROJECT_ADMIN}, False)
    assert claim_at({"https://medal/roles": ["x"]}, "https://medal/roles") == ["x"]
    assert claim_at({}, "realm_access.roles") is None
    for bad in (["medal:alpha:overlord"], ["medal:alpha"], ["medal:a:b:c"], {"alpha": 3}, 42):
        with pytest.raises(UnknownRole):
            roles_from_claim(bad)


def test_a_caller_sees_only_its_projects_and_the_highest_role_wins() -> None:
    caller = Caller(
        id="rita",
        kind="oidc",
        roles=merge_roles({"alpha": Role.ANNOTATOR}, {"alpha": Role.REVIEWER, "beta": Role.ANNOTATOR}),
    )
    assert caller.roles == {"alpha": Role.REVIEWER, "beta": Role.ANNOTATOR}
    assert caller.visible(["alpha", "beta", "gamma"]) == ["alpha", "beta"]
    assert caller.may(Action.APPROVE, "alpha") and not caller.may(Action.APPROVE, "beta")
    assert not caller.may(Action.VIEW, "gamma") and not caller.knows("gamma")
    assert caller.project_filter == frozenset({"alpha", "beta"})
    rights = caller.rights()
    assert rights["projects"]["beta"] == {"role": "annotator", "actions": ["view", "lease", "label", "skip-own"]}  # type: ignore[index]
