"""The authorisation matrix: every operation of every service's OpenAPI by every kind of caller, on real
objects of two projects, against ONE table of what each operation needs.

Callers: anonymous, a wrong key, alpha's annotator, reviewer and project admin, beta's project admin
(a stranger to alpha) and the platform admin (MEDAL_API_KEYS). Each cell's expected outcome follows from
the table's rule and :data:`medal.access.RIGHTS`: 401 without a valid credential, 404 for a project the
caller has no role in, 403 for a role without the right, anything else (2xx, or the service's own 4xx on
the object) for a caller with it. Then alpha's people try every project operation on beta's objects:
404 each. A route missing from the table (a new one) fails :func:`test_the_table_covers_every_operation`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from medal.access import RIGHTS, Action, Role, allows
from tests.access.world import SETTINGS, Objects, World, rle

CALLERS = ("anonymous", "wrong", "annotator", "reviewer", "other-admin", "admin", "platform")
ROLE_OF = {"annotator": Role.ANNOTATOR, "reviewer": Role.REVIEWER, "admin": Role.PROJECT_ADMIN}
STRANGERS = ("annotator", "reviewer", "admin")  # alpha's people, on beta's objects
#: How a refusal that hides a project (or an object of one) reads: exactly a missing one.
OBJECT_CODES = {"image-not-found", "task-not-found", "round-not-found", "selection-not-found", "job-not-found"}
HIDDEN_CODES = {"project-not-found", "not-found", "key-not-found", *OBJECT_CODES}
Outcome = Literal["allowed", "unauthenticated", "forbidden", "hidden"]
Body = Callable[[Objects, str], dict[str, Any]]


@dataclass(frozen=True)
class Rule:
    """What an operation needs, and how the matrix calls it.

    kind: ``project`` (the right ``action`` in the project the path or body names), ``platform`` (a
    platform-wide ``action``: platform admins only), ``signed-in`` (any valid caller; lists are filtered)
    or ``public`` (probes, how to sign in). ``others``: the right needed on the matrix's objects, which
    someone else made (an annotator may see and correct its own masks only). ``inline``: the route checks
    the right in its body (the project comes from the request body or the object), not with require().
    ``pending``: checks that another branch adds; only the 401 cells run until it lands.
    """

    kind: Literal["project", "platform", "signed-in", "public"]
    action: Action | None = None
    others: Action | None = None
    inline: bool = False
    json: Body | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    pending: str | None = None


def P(action: Action, **kw: Any) -> Rule:
    return Rule("project", action, **kw)


def PLATFORM(action: Action, **kw: Any) -> Rule:
    return Rule("platform", action, **kw)


SIGNED_IN = Rule("signed-in")
PUBLIC = Rule("public")
JSON = {"content-type": "application/json"}
A, G, T, Q, N = "/annotation/v1", "/ingest/v1", "/trainer/v1", "/query/v1", "/inference/v1"
W, M = "/ingest/dicomweb/{project}/studies", "/annotation/monailabel/{project}"


def probes(service: str) -> dict[tuple[str, str], Rule]:
    return {("GET", f"/{service}/{probe}"): PUBLIC for probe in ("healthz", "readyz", "metrics")}


#: THE table: (method, path) → what the operation needs. One entry per operation of every service.
TABLE: dict[tuple[str, str], Rule] = {
    **{k: v for s in ("annotation", "ingest", "trainer", "query", "inference") for k, v in probes(s).items()},
    # access control (mounted in annotation)
    ("GET", f"{A}/me"): SIGNED_IN,
    ("GET", f"{A}/auth/config"): PUBLIC,
    ("POST", f"{A}/keys"): P(Action.KEYS, inline=True, json=lambda o, c: {"project": o.project, "role": "annotator"}),
    ("GET", f"{A}/keys"): SIGNED_IN,
    ("DELETE", f"{A}/keys/{{key_id}}"): P(Action.KEYS, inline=True),
    ("GET", f"{A}/projects/{{project}}/members"): P(Action.MEMBERS),
    ("PUT", f"{A}/projects/{{project}}/members/{{subject}}"): P(
        Action.MEMBERS, json=lambda o, c: {"role": "annotator"}
    ),
    ("DELETE", f"{A}/projects/{{project}}/members/{{subject}}"): P(Action.MEMBERS),
    ("GET", f"{A}/projects/{{project}}/audit"): P(Action.AUDIT),
    ("GET", f"{A}/audit"): PLATFORM(Action.AUDIT),
    # projects and images
    ("GET", f"{A}/projects"): SIGNED_IN,
    ("POST", f"{A}/projects"): PLATFORM(
        Action.CREATE_PROJECT, json=lambda o, c: {"name": f"made-by-{c}-{uuid.uuid4().hex[:6]}", "settings": SETTINGS}
    ),
    ("GET", f"{A}/projects/{{project}}"): P(Action.VIEW),
    ("PUT", f"{A}/projects/{{project}}/settings"): P(Action.SETTINGS, json=lambda o, c: SETTINGS),
    ("GET", f"{A}/projects/{{project}}/images"): P(Action.VIEW),
    ("PUT", f"{A}/images/{{image_id}}/held-out"): P(Action.SETTINGS, json=lambda o, c: {"held_out": False}),
    ("GET", f"{A}/images/{{image_id}}/display.png"): P(Action.VIEW),
    ("GET", f"{A}/images/{{image_id}}/windowed.png"): P(Action.VIEW, params={"preset": "ct-lung"}),
    # labelling
    ("POST", f"{A}/projects/{{project}}/rounds"): P(Action.ROUNDS),
    ("GET", f"{A}/projects/{{project}}/rounds"): P(Action.VIEW),
    ("POST", f"{A}/projects/{{project}}/rounds/{{round_id}}/retry"): P(Action.TRAIN),
    ("POST", f"{A}/rounds/{{round_id}}/close"): P(Action.ROUNDS),
    ("GET", f"{A}/rounds/{{round_id}}/tasks"): P(Action.VIEW),
    ("POST", f"{A}/projects/{{project}}/tasks/lease"): P(Action.LEASE),
    ("POST", f"{A}/tasks/{{task_id}}/mask"): P(
        Action.LABEL, content=rle(), headers={**JSON, "X-Lease-Token": str(uuid.uuid4())}
    ),
    ("POST", f"{A}/tasks/{{task_id}}/skip"): P(Action.SKIP_OWN, headers={"X-Lease-Token": str(uuid.uuid4())}),
    ("GET", f"{A}/images/{{image_id}}/mask"): P(Action.VIEW, others=Action.REVIEW),
    ("PUT", f"{A}/images/{{image_id}}/mask"): P(
        Action.LABEL, others=Action.CORRECT_ANY, content=rle(), headers={**JSON, "If-Match": '"0"'}
    ),
    ("POST", f"{A}/images/{{image_id}}/mask/approve"): P(Action.APPROVE, json=lambda o, c: {"version": 1}),
    ("GET", f"{A}/projects/{{project}}/masks"): P(Action.VIEW),
    ("GET", f"{A}/projects/{{project}}/models"): P(Action.VIEW),
    ("POST", f"{A}/projects/{{project}}/autolabel"): P(Action.TRAIN, json=lambda o, c: {}),
    ("GET", f"{A}/projects/{{project}}/status"): P(Action.VIEW),
    ("GET", f"{A}/projects/{{project}}/export"): P(Action.EXPORT),
    ("POST", f"{A}/projects/{{project}}/exports/stow"): P(
        Action.EXPORT, json=lambda o, c: {"url": "http://127.0.0.9/none"}
    ),
    # MONAI Label
    ("GET", f"{M}/info/"): P(Action.VIEW),
    ("POST", f"{M}/activelearning/{{strategy}}"): P(Action.LEASE),
    ("GET", f"{M}/datastore/"): P(Action.VIEW),
    ("GET", f"{M}/datastore/image"): P(Action.VIEW),
    ("PUT", f"{M}/datastore/label"): P(Action.LABEL),
    ("GET", f"{M}/datastore/label"): P(Action.VIEW),
    ("POST", f"{M}/infer/{{model}}"): P(Action.LABEL),
    ("GET", f"{M}/train/"): P(Action.VIEW),
    ("POST", f"{M}/train/"): P(Action.TRAIN),
    ("DELETE", f"{M}/train/"): P(Action.TRAIN),
    ("POST", f"{M}/train/{{model}}"): P(Action.TRAIN),
    ("HEAD", f"{M}/datastore/image"): P(Action.VIEW),
    ("PUT", f"{M}/datastore/image"): P(Action.INGEST),
    ("HEAD", f"{M}/datastore/label"): P(Action.VIEW),
    ("GET", f"{M}/datastore/dataset"): P(Action.EXPORT),
    ("GET", f"{M}/scoring/"): P(Action.VIEW),
    ("POST", f"{M}/scoring/{{method}}"): P(Action.ROUNDS),
    ("DELETE", f"{M}/scoring/"): P(Action.ROUNDS),
    ("GET", f"{M}/batch/infer"): P(Action.VIEW),
    ("POST", f"{M}/batch/infer/{{model}}"): P(Action.TRAIN),
    ("DELETE", f"{M}/batch/infer"): P(Action.TRAIN),
    ("GET", f"{M}/model/info/{{model}}"): P(Action.MODELS),
    ("GET", f"{M}/model/{{model}}"): P(Action.MODELS),
    ("PUT", f"{M}/session/"): P(Action.LABEL),
    ("GET", f"{M}/session/{{session_id}}"): P(Action.LABEL),
    ("DELETE", f"{M}/session/{{session_id}}"): P(Action.LABEL),
    # MONAI Label's sign-in: asked before the plugin has a token
    ("GET", f"{M}/auth/"): PUBLIC,
    ("POST", f"{M}/auth/token"): PUBLIC,
    ("GET", f"{M}/auth/token/valid"): SIGNED_IN,
    # ingest
    ("POST", f"{G}/projects/{{project}}/instances"): P(Action.INGEST, headers={"content-type": "application/dicom"}),
    ("GET", f"{G}/jobs/{{job_id}}"): P(Action.INGEST),
    ("GET", f"{G}/projects/{{project}}/studies"): P(Action.VIEW),
    ("GET", f"{G}/projects/{{project}}/settings"): P(Action.VIEW),
    ("PUT", f"{G}/projects/{{project}}/settings"): P(Action.SETTINGS, json=lambda o, c: {"date_policy": "shift"}),
    ("GET", f"{G}/projects/{{project}}/quarantine"): P(Action.QUARANTINE_RELEASE),
    ("POST", f"{G}/projects/{{project}}/quarantine/{{instance_id}}/release"): P(Action.QUARANTINE_RELEASE),
    ("POST", f"{G}/projects/{{project}}/pulls"): P(
        Action.INGEST, json=lambda o, c: {"dicomweb": "http://10.0.0.1/x", "studies": ["1.2.3"]}
    ),
    ("POST", f"{G}/projects/{{project}}/pushes"): P(Action.EXPORT, json=lambda o, c: {"stow": "http://10.0.0.1/x"}),
    ("POST", f"{G}/projects/{{project}}/original-uids"): P(
        Action.EXPORT, json=lambda o, c: {"sop_uids": [o.ids["sop"]]}
    ),
    # DICOMweb
    ("POST", W): P(
        Action.INGEST,
        content=b"--x--\r\n",
        headers={"content-type": 'multipart/related; type="application/dicom"; boundary=x'},
    ),
    ("GET", W): P(Action.VIEW),
    ("GET", f"{W}/{{study}}/series"): P(Action.VIEW),
    ("GET", f"{W}/{{study}}/instances"): P(Action.VIEW),
    ("GET", f"{W}/{{study}}/series/{{series}}/instances"): P(Action.VIEW),
    ("GET", f"{W}/{{study}}/metadata"): P(Action.VIEW),
    ("GET", f"{W}/{{study}}/series/{{series}}/metadata"): P(Action.VIEW),
    ("GET", f"{W}/{{study}}/series/{{series}}/instances/{{sop}}/metadata"): P(Action.VIEW),
    ("GET", f"{W}/{{study}}"): P(Action.VIEW),
    ("GET", f"{W}/{{study}}/series/{{series}}"): P(Action.VIEW),
    ("GET", f"{W}/{{study}}/series/{{series}}/instances/{{sop}}"): P(Action.VIEW),
    ("GET", f"{W}/{{study}}/series/{{series}}/instances/{{sop}}/frames/{{frames}}"): P(Action.VIEW),
    # trainer, query, inference
    ("GET", f"{T}/info"): SIGNED_IN,
    ("GET", f"{T}/projects/{{project}}/jobs"): P(Action.VIEW),
    ("GET", f"{T}/projects/{{project}}/models"): P(Action.VIEW),
    ("GET", f"{T}/projects/{{project}}/models/compare"): P(Action.VIEW, params={"a": "1", "b": "1"}),
    ("POST", f"{T}/projects/{{project}}/models/rollback"): P(Action.MODELS),
    ("GET", f"{T}/projects/{{project}}/models/{{version}}"): P(Action.VIEW),
    ("POST", f"{T}/projects/{{project}}/models/{{version}}/promote"): P(Action.MODELS),
    ("GET", f"{Q}/info"): SIGNED_IN,
    ("GET", f"{Q}/projects/{{project}}/runs"): P(Action.VIEW),
    ("GET", f"{Q}/projects/{{project}}/selections"): P(Action.VIEW),
    ("GET", f"{Q}/selections/{{selection_id}}"): P(Action.VIEW),
    ("POST", f"{Q}/selections/{{selection_id}}/replay"): P(Action.AUDIT),
    ("GET", f"{N}/info"): SIGNED_IN,
    ("POST", f"{N}/projects/{{project}}/predict"): P(Action.LABEL, json=lambda o, c: {"image_id": o.ids["image_id"]}),
}

SERVICES = ("annotation", "ingest", "trainer", "query", "inference")


def _order(operation: tuple[str, str]) -> tuple[int, str]:
    """Reads first, then writes, deletions last (a revoked key or member must not change later cells)."""
    return {"HEAD": 0, "GET": 0, "PUT": 1, "POST": 1, "DELETE": 2}[operation[0]], operation[1]


OPERATIONS = sorted(TABLE, key=_order)


@pytest.fixture(scope="module")
def clients(world: World) -> Iterator[dict[str, httpx.Client]]:
    made = {caller: world.client(caller) for caller in CALLERS}
    yield made
    for client in made.values():
        client.close()


def fill(path: str, objects: Objects) -> str:
    values = {
        "project": objects.project,
        "version": "1",
        "subject": "matrix-subject",
        "frames": "1",
        "strategy": SETTINGS["strategy"],
        "model": "medal",
        "method": "suggestive",
        "session_id": "00000000-0000-4000-8000-000000000000",
        **{name: value for name, value in objects.ids.items()},
    }
    return path.format(**values)


def expected(rule: Rule, caller: str) -> Outcome:
    if rule.kind == "public":
        return "allowed"
    if caller in ("anonymous", "wrong"):
        return "unauthenticated"
    if rule.kind == "signed-in" or caller == "platform":
        return "allowed"
    if rule.kind == "platform":
        return "forbidden"
    if caller == "other-admin":
        return "hidden"
    assert rule.action is not None
    needed = rule.others or rule.action
    return "allowed" if allows(ROLE_OF[caller], needed) else "forbidden"


def outcome(response: httpx.Response) -> Outcome | str:
    if response.status_code >= 500:
        return f"server error {response.status_code}"
    code = None
    if response.request.method == "HEAD":  # no body: the status alone says it
        return {401: "unauthenticated", 403: "forbidden", 404: "hidden"}.get(response.status_code, "allowed")
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    if response.status_code == 401 and code == "unauthenticated":
        return "unauthenticated"
    if response.status_code == 403 and code == "forbidden":
        return "forbidden"
    if response.status_code == 404 and code in HIDDEN_CODES:
        return "hidden"
    return "allowed"


def call(client: httpx.Client, method: str, path: str, rule: Rule, objects: Objects, caller: str) -> httpx.Response:
    content = rule.content
    if method == "POST" and path.endswith("/instances"):
        content = objects.dicom
    return client.request(
        method,
        fill(path, objects),
        json=rule.json(objects, caller) if rule.json else None,
        content=content,
        headers=rule.headers,
        params=rule.params,
    )


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_caller_gets_what_the_table_says(
    world: World, clients: dict[str, httpx.Client], method: str, path: str
) -> None:
    rule = TABLE[(method, path)]
    callers = ("anonymous", "wrong") if rule.pending else CALLERS
    alpha, beta = world.objects["alpha"], world.objects["beta"]
    got: dict[str, Any] = {}
    for caller in callers:
        response = call(clients[caller], method, path, rule, alpha, caller)
        got[caller] = outcome(response)
        if caller == "other-admin" and rule.kind == "project":
            assert not response.is_success, f"{caller} got {response.status_code} on another project's {path}"
    assert got == {caller: expected(rule, caller) for caller in callers}, (method, path)
    if rule.kind == "project" and not rule.pending:  # alpha's people on beta's objects: hidden, always
        strangers = {c: call(clients[c], method, path, rule, beta, c) for c in STRANGERS}
        assert {c: (r.status_code, outcome(r)) for c, r in strangers.items()} == {
            c: (404, "hidden") for c in STRANGERS
        }, (method, path)


def service_operations(world: World) -> set[tuple[str, str]]:
    found = set()
    with httpx.Client(base_url=world.base) as http:
        for service in SERVICES:
            spec = http.get(f"/{service}/openapi.json").json()
            found |= {(method.upper(), f"/{service}{path}") for path, ops in spec["paths"].items() for method in ops}
    return found


def test_the_table_covers_every_operation(world: World) -> None:
    """A new route fails here until the table says what it needs; a removed one until its entry goes."""
    operations = service_operations(world)
    assert sorted(operations - TABLE.keys()) == [], "operations the table does not cover"
    assert sorted(TABLE.keys() - operations) == [], "table entries without an operation"


def declared_rights(route: APIRoute) -> list[str]:
    names: list[str] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        name = getattr(dependency.call, "__name__", "")
        if name.startswith("require_"):
            names.append(name.removeprefix("require_"))
        stack.extend(dependency.dependencies)
    return names


def test_each_route_declares_the_right_the_table_expects(world: World) -> None:
    """The table is not a second opinion: each guarded route declares exactly its one Action with require()."""
    mismatched = {}
    for mount in world.app.routes:
        if not isinstance(mount, Mount) or mount.path.strip("/") not in SERVICES:
            continue
        for route in mount.app.routes:  # type: ignore[union-attr]
            if not isinstance(route, APIRoute):
                continue
            for method in route.methods:
                rule = TABLE[(method, f"{mount.path}{route.path}")]
                declared = declared_rights(route)
                wanted = [] if rule.kind in ("public", "signed-in") or rule.inline else [rule.action.name.lower()]  # type: ignore[union-attr]
                if rule.pending is None and declared != wanted:
                    mismatched[(method, route.path)] = (declared, wanted)
    assert mismatched == {}
    assert set(RIGHTS) == set(Action)


def test_lists_show_only_the_callers_projects(world: World, clients: dict[str, httpx.Client]) -> None:
    names = {c: sorted(p["name"] for p in clients[c].get(f"{A}/projects").json()) for c in CALLERS[2:]}
    assert names["annotator"] == names["reviewer"] == names["admin"] == ["alpha"]
    assert names["other-admin"] == ["beta"]
    assert {"alpha", "beta"} <= set(names["platform"])
    keys = {c: {k["project"] for k in clients[c].get(f"{A}/keys").json()["keys"]} for c in ("admin", "other-admin")}
    assert keys == {"admin": {"alpha"}, "other-admin": {"beta"}}
    assert clients["annotator"].get(f"{A}/keys").json()["keys"] == []
    masks = clients["annotator"].get(f"{A}/projects/alpha/masks").json()
    assert all(mask["author"] == clients["annotator"].get(f"{A}/me").json()["id"] for mask in masks)
    assert len(clients["reviewer"].get(f"{A}/projects/alpha/masks").json()) >= 4
    me = clients["reviewer"].get(f"{A}/me").json()
    assert me["kind"] == "api-key" and set(me["projects"]) == {"alpha"}
    assert "approve" in me["projects"]["alpha"]["actions"] and "export" not in me["projects"]["alpha"]["actions"]


def test_the_matrix_runs_on_real_objects(world: World) -> None:
    for name in ("alpha", "beta"):
        ids = world.objects[name].ids
        assert {"image_id", "task_id", "round_id", "selection_id", "job_id", "instance_id", "key_id", "study"} <= set(
            ids
        )


OBJECT_PARAMETERS = ("image_id", "task_id", "round_id", "selection_id", "job_id", "key_id")
OBJECT_ROUTES = [
    op
    for op, rule in TABLE.items()
    if rule.kind == "project"
    and not rule.pending
    and "{project}" not in op[1]  # the caller named the project itself: nothing to leak
    and any(f"{{{name}}}" in op[1] for name in OBJECT_PARAMETERS)
]


@pytest.mark.parametrize(("method", "path"), OBJECT_ROUTES, ids=[f"{m} {p}" for m, p in OBJECT_ROUTES])
def test_a_foreign_object_answers_exactly_as_a_missing_one(
    world: World, clients: dict[str, httpx.Client], method: str, path: str
) -> None:
    beta = world.objects["beta"]
    ghost = Objects("beta", dicom=beta.dicom, ids=dict(beta.ids))
    for name in OBJECT_PARAMETERS:
        ghost.ids[name] = str(uuid.uuid4()) if name != "key_id" else "zzzzzzzzzzzz"
    rule = TABLE[(method, path)]
    for caller in STRANGERS:
        foreign = call(clients[caller], method, path, rule, beta, caller)
        missing = call(clients[caller], method, path, rule, ghost, caller)
        assert foreign.status_code == missing.status_code == 404, (caller, foreign.text, missing.text)
        one, other = foreign.json()["error"], missing.json()["error"]
        for name in OBJECT_PARAMETERS:
            one["message"] = one["message"].replace(beta.ids[name], "<id>")
            other["message"] = other["message"].replace(ghost.ids[name], "<id>")
        assert one == other and "beta" not in one["message"], (caller, one, other)
