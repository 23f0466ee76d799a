"""The deployed topology works end to end (issue 11, docs/adr/0033-deployed-topology.md).

- Every HTTP call a service can make to another is configured and allowed: the calls are derived
  from the code (the ``<service>_url`` settings in medal/settings.py and the service modules that
  read them), then each rendered overlay and the compose file must set the address, the Service must
  lead to the target's API pods, and the NetworkPolicies must allow exactly those flows.
- Large studies: the documented maximum upload is the same in the code, the ConfigMap, the ingest
  Ingress and deploy/README.md, and ingest spools uploads to a volume that holds them.
- GPU work scales on its real signal and to zero; APIs spread over nodes.
"""

from __future__ import annotations

import ast
import base64
import functools
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from medal.settings import Settings
from tests.architecture.deploy_support import (
    COMPOSE,
    LEARN_SERVICES,
    OVERLAYS,
    README,
    ROOT,
    SERVICES,
    WORKER_SERVICES,
    Doc,
    allowed,
    by_name,
    config,
    env_of,
    of_kind,
    pod_labels,
    render,
)

#: `*_url` settings that are not medal services (the adapters' dependencies).
# Settings that address dependencies rather than medal services (the identity provider is the hospital's).
DEPENDENCY_URLS = {"database_url", "broker_url", "oidc_discovery_url"}
HTTP_CLIENTS = ("httpx", "aiohttp", "requests", "urllib.request", "http.client")
# Settings that name hosts outside medal a module may call (a PACS's DICOMweb, allow-listed against SSRF).
EXTERNAL_TARGETS = {"dicomweb_allowed_urls"}
# Modules that call the hospital's identity provider (its endpoints come from MEDAL_OIDC_ISSUER's discovery).
IDENTITY_PROVIDER_CALLERS = {"services.annotation.monailabel_auth"}


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "static" not in p.parts)


def service_url_settings() -> dict[str, str]:
    """Settings field → the medal service it addresses, read from medal/settings.py."""
    tree = ast.parse((ROOT / "medal" / "settings.py").read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    fields = [n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    urls = [f for f in fields if f.endswith("_url")]
    unknown = set(urls) - DEPENDENCY_URLS - {f"{s}_url" for s in SERVICES}
    assert not unknown, f"new *_url settings {unknown}: say here what they address"
    return {f: f.removesuffix("_url") for f in urls if f not in DEPENDENCY_URLS}


def _reads(path: Path, field: str) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == field for n in ast.walk(ast.parse(path.read_text())))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _worker_modules(service: str) -> set[str]:
    """Modules of the service that its worker imports (from handlers.py, transitively)."""
    folder = ROOT / "services" / service
    by_name = {_module(p): p for p in _python_files(folder)}
    seen: set[str] = set()
    todo = [f"services.{service}.handlers"] if f"services.{service}.handlers" in by_name else []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [m for m in _imports(by_name[name]) if m in by_name]
    return seen


def _package_of(path: Path) -> list[Path]:
    """``path`` and the modules of its service it imports or is imported by (where the allow-list is read)."""
    name, imported = _module(path), _imports(path)
    return [path, *(p for p in _python_files(path.parent) if name in _imports(p) or _module(p) in imported)]


@functools.cache
def http_calls() -> frozenset[tuple[str, str, str]]:
    """(caller service, role, target service) for every HTTP call between medal services."""
    calls: set[tuple[str, str, str]] = set()
    settings = service_url_settings()
    for service in SERVICES:
        worker = _worker_modules(service)
        for path in _python_files(ROOT / "services" / service):
            read = {field for field in settings if _reads(path, field)}
            if any(m == c or m.startswith(f"{c}.") for m in _imports(path) for c in HTTP_CLIENTS):
                external = _module(path) in IDENTITY_PROVIDER_CALLERS or any(
                    _reads(p, field) for p in _package_of(path) for field in EXTERNAL_TARGETS
                )
                assert read or external, f"{path.relative_to(ROOT)} makes HTTP calls without a *_url setting"
            for field in read:
                calls.add((service, "api", settings[field]))
                if _module(path) in worker:
                    calls.add((service, "worker", settings[field]))
    medal = [p for p in _python_files(ROOT / "medal") if p.name != "settings.py"]
    shared = [p for p in medal if any(_reads(p, f) for f in settings)]
    assert not shared, f"shared code reads service addresses: {shared}"
    return frozenset(calls)


def test_the_code_makes_the_calls_this_test_knows_of() -> None:
    """A guard on the derivation itself: the MONAI Label API calls inference and trainer."""
    assert {("annotation", "api", "inference"), ("annotation", "api", "trainer")} <= http_calls()


def _api_port(docs: tuple[Doc, ...], service: str) -> int:
    (c,) = by_name(docs, "Deployment", f"medal-{service}-api")["spec"]["template"]["spec"]["containers"]
    (port,) = c["ports"]
    return int(port["containerPort"])


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_http_call_between_services_is_configured_and_allowed(target: str) -> None:
    docs = render(target)
    policies = of_kind(docs, "NetworkPolicy")
    for caller, role, callee in sorted(http_calls()):
        deployment = by_name(docs, "Deployment", f"medal-{caller}-{role}")
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        setting = f"MEDAL_{callee.upper()}_URL"
        assert setting in env, f"{caller} {role} calls {callee} but {setting} is not set"
        url = urlsplit(env[setting]["value"])
        host = url.hostname or ""
        service = by_name(docs, "Service", host.split(".")[0])
        assert host in (service["metadata"]["name"], f"{service['metadata']['name']}.medal.svc.cluster.local")
        (port,) = [p for p in service["spec"]["ports"] if p["port"] == url.port]
        target_pods = pod_labels(by_name(docs, "Deployment", f"medal-{callee}-api"))
        selector = service["spec"]["selector"]
        assert all(target_pods.get(k) == v for k, v in selector.items()), f"{host} does not lead to {callee}'s API"
        assert port["targetPort"] in ("http", _api_port(docs, callee))
        source_pods = pod_labels(deployment)
        assert allowed(policies, source_pods, target_pods, _api_port(docs, callee)), f"policy blocks {caller}->{callee}"


@pytest.mark.parametrize("target", OVERLAYS)
def test_network_policies_allow_no_other_flow_between_medal_pods(target: str) -> None:
    docs = render(target)
    policies = of_kind(docs, "NetworkPolicy")
    expected = {(f"medal-{c}-{r}", f"medal-{t}-api") for c, r, t in http_calls()}
    pods = {
        d["metadata"]["name"]: pod_labels(d)
        for d in of_kind(docs, "Deployment")
        if d["metadata"]["name"].startswith("medal-")
    }
    open_flows = {
        (src, dst)
        for src, src_labels in pods.items()
        for dst, dst_labels in pods.items()
        if src != dst and dst.endswith("-api") and allowed(policies, src_labels, dst_labels, 8000)
    }
    assert open_flows == expected


def test_compose_sets_every_service_address() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for caller, role, callee in http_calls():
        env = services[f"{caller}-{role}"]["environment"]
        assert env.get(f"MEDAL_{callee.upper()}_URL") == f"http://{callee}-api:8000", (caller, role, callee)


# --------------------------------------------------------------------------- large studies


def _nginx_bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", size).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


def _module_constant(path: Path, name: str) -> int:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return int(eval(compile(ast.Expression(node.value), str(path), "eval"), {"__builtins__": {}}))
    raise AssertionError(f"{name} not found in {path}")


DOCUMENTED_MAX = Settings.model_fields["max_upload_bytes"].default


def test_documented_maximum_upload_is_the_same_in_code_docs_and_compose() -> None:
    assert DOCUMENTED_MAX == 2 * 1024**3
    readme = README.read_text()
    assert "2 GiB" in readme and "MEDAL_MAX_UPLOAD_BYTES" in readme
    env = yaml.safe_load(COMPOSE.read_text())["services"]["ingest-api"]["environment"]
    assert int(env["MEDAL_MAX_UPLOAD_BYTES"]) == DOCUMENTED_MAX


@pytest.mark.parametrize("target", OVERLAYS)
def test_ingress_takes_the_documented_maximum_and_streams_it(target: str) -> None:
    docs = render(target)
    assert int(config(docs)["MEDAL_MAX_UPLOAD_BYTES"]) == DOCUMENTED_MAX
    routes = {
        path["path"]: ingress
        for ingress in of_kind(docs, "Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert sorted(routes) == sorted(f"/{s}" for s in SERVICES)
    upload = routes["/ingest"]["metadata"]["annotations"]
    assert _nginx_bytes(upload["nginx.ingress.kubernetes.io/proxy-body-size"]) >= DOCUMENTED_MAX
    assert upload["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    assert int(upload["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    assert int(upload["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 600
    # The other APIs take masks (annotation) of at most MAX_MASK_BYTES and wait for inference (120 s).
    max_mask = _module_constant(ROOT / "services" / "annotation" / "api_labelling.py", "MAX_MASK_BYTES")
    small = routes["/annotation"]["metadata"]["annotations"]
    assert _nginx_bytes(small["nginx.ingress.kubernetes.io/proxy-body-size"]) >= max_mask
    assert int(small["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > 120


@pytest.mark.parametrize("target", OVERLAYS)
def test_ingest_spools_uploads_to_a_volume_that_holds_them(target: str) -> None:
    pod = by_name(render(target), "Deployment", "medal-ingest-api")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    spool = env_of(c)["TMPDIR"]["value"]
    assert not spool.startswith("/tmp"), "the /tmp emptyDir is small"
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == spool]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "medium" not in volume["emptyDir"], "a Memory emptyDir would hold uploads in RAM"
    size = volume["emptyDir"]["sizeLimit"]
    assert size.endswith("Gi") and int(size[:-2]) * 1024**3 >= 2 * DOCUMENTED_MAX, size
    assert c["resources"]["requests"]["ephemeral-storage"] == size, "the scheduler must reserve the spool"


# --------------------------------------------------------------------------- scaling


@pytest.mark.parametrize("target", OVERLAYS)
def test_trainer_scales_on_its_queued_and_leased_jobs_not_only_the_queue(target: str) -> None:
    docs = render(target)
    triggers = {t["type"]: t for t in by_name(docs, "ScaledObject", "medal-trainer-worker")["spec"]["triggers"]}
    assert set(triggers) == {"postgresql", "rabbitmq"}
    sql = triggers["postgresql"]["metadata"]["query"]
    assert sql == "SELECT medal_trainer_backlog()"
    assert triggers["postgresql"]["metadata"]["targetQueryValue"] == "1"  # one member job per pod (one GPU)
    auth = by_name(docs, "TriggerAuthentication", triggers["postgresql"]["authenticationRef"]["name"])
    assert [r["parameter"] for r in auth["spec"]["secretTargetRef"]] == ["connection"]
    # The function KEDA calls counts exactly the queued and running (leased) member jobs.
    init = (ROOT / "deploy" / "k8s" / "overlays" / "dev" / "deps" / "postgres-init.sql").read_text()
    assert "FROM public.trainer_jobs WHERE state IN ('queued', 'running')" in init
    assert "GRANT EXECUTE ON FUNCTION public.medal_trainer_backlog() TO medal_keda" in init
    jobs = (ROOT / "services" / "trainer" / "jobs.py").read_text()
    assert "'queued'" in jobs or '"queued"' in jobs
    assert "'running'" in jobs or '"running"' in jobs


def test_dev_keda_reads_the_backlog_as_its_read_only_role() -> None:
    docs = render("dev")
    secret = by_name(docs, "Secret", "medal-keda-postgresql")
    connection = base64.b64decode(secret["data"]["connection"]).decode()
    assert urlsplit(connection).username == "medal_keda"
    policy = by_name(docs, "NetworkPolicy", "allow-medal-to-postgres")
    keda = [r for r in policy["spec"]["ingress"] if any("namespaceSelector" in p for p in r["from"])]
    assert keda and keda[0]["ports"] == [{"protocol": "TCP", "port": 5432}]


def test_gpu_overlay_scales_learning_workers_to_zero_and_others_not() -> None:
    docs = render("gpu")
    for svc in WORKER_SERVICES:
        scaled = by_name(docs, "ScaledObject", f"medal-{svc}-worker")["spec"]
        assert scaled["minReplicaCount"] == (0 if svc in LEARN_SERVICES else 1), svc
        assert scaled["maxReplicaCount"] >= 1
    for svc in LEARN_SERVICES:  # the trainer's signal is a scaler; query's and inference's are their queues
        triggers = by_name(docs, "ScaledObject", f"medal-{svc}-worker")["spec"]["triggers"]
        assert any(t["type"] == "rabbitmq" for t in triggers)


@pytest.mark.parametrize("target", OVERLAYS)
def test_apis_spread_over_nodes(target: str) -> None:
    docs = render(target)
    for svc in SERVICES:
        deployment = by_name(docs, "Deployment", f"medal-{svc}-api")
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        by_key = {s["topologyKey"]: s for s in spread}
        node = by_key["kubernetes.io/hostname"]
        assert node["maxSkew"] == 1 and node["whenUnsatisfiable"] == "DoNotSchedule"
        assert node["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        assert node.get("nodeTaintsPolicy") == "Honor", "tainted GPU nodes must not count as domains"
        assert "topology.kubernetes.io/zone" in by_key
