"""require(action): 401 without valid credentials, 404 for a project the caller has no role in, 403 for a
known project where its role lacks the right, 2xx otherwise, on each kind of route phase 2 guards."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.access.conftest import IMAGES, PLATFORM_KEY, Served
from tests.access.provider import Provider

ALPHA_IMAGE, BETA_IMAGE = sorted(IMAGES, key=IMAGES.__getitem__)

# (method, path): expected status per caller. Callers: anonymous, wrong, annotator (alpha), reviewer (beta,
# signed in through the browser flow), member (granted reviewer of alpha in the table), admin (alpha),
# platform (MEDAL_API_KEYS), operator (platform-admin role in the token).
CALLERS = ("anonymous", "wrong", "annotator", "reviewer", "member", "admin", "platform", "operator")
MATRIX: dict[tuple[str, str], tuple[int, ...]] = {
    ("GET", "/v1/projects/alpha/images"): (401, 401, 200, 404, 200, 200, 200, 200),
    ("GET", "/v1/projects/beta/images"): (401, 401, 404, 200, 404, 404, 200, 200),
    ("GET", "/v1/projects/ghost/images"): (401, 401, 404, 404, 404, 404, 200, 200),
    ("POST", "/v1/projects/alpha/masks/m1/approve"): (401, 401, 403, 404, 200, 200, 200, 200),
    ("POST", "/v1/projects/beta/masks/m1/approve"): (401, 401, 404, 200, 404, 404, 200, 200),
    ("POST", "/v1/projects/alpha/rounds"): (401, 401, 403, 404, 403, 200, 200, 200),
    ("POST", "/v1/projects/beta/rounds"): (401, 401, 404, 403, 404, 404, 200, 200),
    ("GET", f"/v1/images/{ALPHA_IMAGE}"): (401, 401, 200, 404, 200, 200, 200, 200),
    ("GET", f"/v1/images/{BETA_IMAGE}"): (401, 401, 404, 200, 404, 404, 200, 200),
    ("GET", "/v1/images/00000000-dead-4000-8000-000000000000"): (401, 401, 404, 404, 404, 404, 404, 404),
    ("POST", "/v1/projects"): (401, 401, 403, 403, 403, 403, 201, 201),
    ("GET", "/v1/projects/alpha/members"): (401, 401, 403, 404, 403, 200, 200, 200),
    ("GET", "/v1/projects/beta/audit"): (401, 401, 404, 403, 404, 404, 200, 200),
    ("GET", "/v1/audit"): (401, 401, 403, 403, 403, 403, 200, 200),
}


@pytest.fixture(scope="module")
def credentials(served: Served, provider: Provider) -> Iterator[dict[str, dict[str, str]]]:
    platform = {"X-API-Key": PLATFORM_KEY}
    nora = provider.sign_in("nora")["access_token"]
    granted = httpx.put(
        f"{served.base}/v1/projects/alpha/members/nora", json={"role": "reviewer", "name": "Nora"}, headers=platform
    )
    assert granted.status_code == 200, granted.text
    yield {
        "anonymous": {},
        "wrong": {"X-API-Key": "medal_aaaaaaaaaaaa_" + "b" * 43},
        "annotator": {"Authorization": "Bearer " + provider.machine_token("alpha-annotator")},
        "reviewer": {"Authorization": "Bearer " + provider.sign_in("rita")["access_token"]},
        "member": {"Authorization": "Bearer " + nora},
        "admin": {"Authorization": "Bearer " + provider.machine_token("alpha-admin")},
        "platform": platform,
        "operator": {"Authorization": "Bearer " + provider.machine_token("operator")},
    }
    httpx.delete(f"{served.base}/v1/projects/alpha/members/nora", headers=platform)


@pytest.mark.parametrize(("method", "path"), list(MATRIX))
def test_every_caller_gets_the_answer_of_the_table(
    served: Served, credentials: dict[str, dict[str, str]], method: str, path: str
) -> None:
    got = tuple(
        httpx.request(method, served.base + path, headers=credentials[caller]).status_code for caller in CALLERS
    )
    assert dict(zip(CALLERS, got, strict=True)) == dict(zip(CALLERS, MATRIX[(method, path)], strict=True))


def test_a_foreign_project_looks_exactly_like_a_missing_one(
    served: Served, credentials: dict[str, dict[str, str]]
) -> None:
    foreign = httpx.get(f"{served.base}/v1/projects/beta/images", headers=credentials["annotator"])
    missing = httpx.get(f"{served.base}/v1/projects/ghost/images", headers=credentials["annotator"])
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"]["code"] == missing.json()["error"]["code"] == "project-not-found"
    assert foreign.json()["error"]["message"].replace("beta", "X") == missing.json()["error"]["message"].replace(
        "ghost", "X"
    )


def test_a_forbidden_answer_names_the_action_and_the_role_it_needs(
    served: Served, credentials: dict[str, dict[str, str]]
) -> None:
    response = httpx.post(f"{served.base}/v1/projects/alpha/rounds", headers=credentials["annotator"])
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden" and "project-admin" in error["message"]
    assert error["details"] == [{"action": "rounds", "project": "alpha"}]


def test_lists_are_filtered_to_the_callers_projects(served: Served, credentials: dict[str, dict[str, str]]) -> None:
    def listed(caller: str) -> list[str]:
        return list(httpx.get(f"{served.base}/v1/projects", headers=credentials[caller]).json()["projects"])

    assert listed("annotator") == ["alpha"]
    assert listed("reviewer") == ["beta"]
    assert listed("platform") == ["alpha", "beta"]


def test_membership_adds_to_the_tokens_roles_and_is_managed_by_project_admins(
    served: Served, credentials: dict[str, dict[str, str]]
) -> None:
    me = httpx.get(f"{served.base}/v1/me", headers=credentials["member"]).json()
    assert me["projects"]["alpha"]["role"] == "reviewer"
    admin = credentials["admin"]
    listed = httpx.get(f"{served.base}/v1/projects/alpha/members", headers=admin).json()["members"]
    assert [(m["subject"], m["role"], m["name"]) for m in listed] == [("nora", "reviewer", "Nora")]
    refused = httpx.put(
        f"{served.base}/v1/projects/alpha/members/x", json={"role": "reviewer"}, headers=credentials["member"]
    )
    assert refused.status_code == 403
    bad = httpx.put(f"{served.base}/v1/projects/alpha/members/x", json={"role": "overlord"}, headers=admin)
    assert bad.status_code == 422 and "unknown role" in bad.json()["error"]["message"]
    ghost = httpx.put(
        f"{served.base}/v1/projects/ghost/members/x", json={"role": "annotator"}, headers=credentials["platform"]
    )
    assert ghost.status_code == 404
