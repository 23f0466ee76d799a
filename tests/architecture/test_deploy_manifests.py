"""Project rules for the deployment manifests (reliability notes T11 / R20, R21, R22).

Each kustomize overlay is rendered with the built-in kustomize of ``kubectl`` (offline) and the
resulting objects are checked with plain Python: resources, probes, Pod Security "restricted",
image tags, GPUs, KEDA triggers, NetworkPolicies, secrets, grace periods, the migration Job.
The compose file and the Dockerfile get a few structural checks too.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from proto.topology import SERVICE_QUEUE

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"

SERVICES = ("ingest", "annotation", "trainer", "query", "inference")
LEARN_SERVICES = ("trainer", "query", "inference")
# The services that consume a queue have a worker, scaled on that queue; ingest consumes none.
QUEUES = SERVICE_QUEUE
WORKERS = tuple(svc for svc in SERVICES if svc in QUEUES)
OVERLAYS = ("dev", "prod", "gpu")
# Overlays that must never carry secret values (dev may, clearly marked).
NO_SECRET_VALUES = ("base", "prod", "gpu")
SECRET_SETTINGS = (
    "MEDAL_DATABASE_URL",
    "MEDAL_BROKER_URL",
    "MEDAL_S3_ACCESS_KEY",
    "MEDAL_S3_SECRET_KEY",
    "MEDAL_DEID_SECRET",
    "MEDAL_API_KEYS",
)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
GPU = "nvidia.com/gpu"

Doc = dict[str, Any]


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is required under CI=true to render the kustomize overlays")
        pytest.skip("kubectl not installed (needed for `kubectl kustomize`)")
    return path


@functools.cache
def _render_cached(target: str) -> tuple[Doc, ...]:
    path = K8S / "base" if target == "base" else K8S / "overlays" / target
    result = subprocess.run(
        [_kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(target: str) -> tuple[Doc, ...]:
    _kubectl()  # skip or fail before touching the cache
    return _render_cached(target)


def of_kind(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def by_name(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(docs: tuple[Doc, ...]) -> Iterator[tuple[Doc, Doc]]:
    """(object, pod spec) for every workload."""
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            yield doc, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(pod: Doc) -> list[Doc]:
    return list(pod.get("initContainers", [])) + list(pod["containers"])


def component(doc: Doc) -> str | None:
    return doc["spec"]["template"]["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def _id(doc: Doc, container: Doc | None = None) -> str:
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    return f"{name}[{container['name']}]" if container else name


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("target", ("base", *OVERLAYS))
def test_overlay_renders(target: str) -> None:
    docs = render(target)
    assert docs
    assert all(d.get("metadata", {}).get("namespace") in (None, "medal") for d in docs)


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_service_has_api_service_hpa_pdb_and_each_consumer_a_worker_and_scaledobject(target: str) -> None:
    docs = render(target)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for svc in SERVICES:
        api = by_name(docs, "Deployment", f"medal-{svc}-api")
        assert api["spec"]["template"]["spec"]["containers"][0]["args"] == ["serve", svc]
        assert component(api) == "api"
        by_name(docs, "Service", f"medal-{svc}")
        hpa = by_name(docs, "HorizontalPodAutoscaler", f"medal-{svc}-api")
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"medal-{svc}-api"
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        by_name(docs, "PodDisruptionBudget", f"medal-{svc}-api")
        if svc in WORKERS:
            worker = by_name(docs, "Deployment", f"medal-{svc}-worker")
            assert worker["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker", svc]
            assert component(worker) == "worker"
            scaled = by_name(docs, "ScaledObject", f"medal-{svc}-worker")
            assert scaled["spec"]["scaleTargetRef"]["name"] == f"medal-{svc}-worker"
        else:  # `medal worker ingest` exits 2: a worker Deployment would crash-loop
            leftovers = {(kind, name) for kind, name in names if name.startswith(f"medal-{svc}-worker")}
            assert not leftovers, leftovers
        # Learning services run on the PyTorch image, the others on the small one.
        image = api["spec"]["template"]["spec"]["containers"][0]["image"]
        expected = "medal-learn" if svc in LEARN_SERVICES else "medal-api"
        assert expected in image, f"{svc} uses {image}"


# --------------------------------------------------------------------------- R20: containers


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_container_has_cpu_and_memory_requests_and_limits(target: str) -> None:
    for doc, pod in workloads(render(target)):
        for c in containers(pod):
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert res.get(part, {}).get(resource), f"{_id(doc, c)} lacks {part}.{resource}"


@pytest.mark.parametrize("target", OVERLAYS)
def test_pod_security_restricted(target: str) -> None:
    for doc, pod in workloads(render(target)):
        pod_sc = pod.get("securityContext", {})
        assert pod.get("automountServiceAccountToken") is False, f"{_id(doc)} mounts an SA token"
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for c in containers(pod):
            sc = c.get("securityContext", {})
            where = _id(doc, c)
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{where}: runAsNonRoot"
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0, f"{where}: runs as uid 0"
            assert sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
            assert sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
            assert sc.get("privileged") is not True, f"{where}: privileged"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL"
            assert not sc.get("capabilities", {}).get("add"), f"{where}: adds capabilities"
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", f"{where}: seccomp RuntimeDefault"


@pytest.mark.parametrize("target", OVERLAYS)
def test_images_have_an_explicit_tag_or_digest_and_never_latest(target: str) -> None:
    for doc, pod in workloads(render(target)):
        for c in containers(pod):
            image = c["image"]
            if "@sha256:" in image:
                continue
            last = image.rsplit("/", 1)[-1]
            assert ":" in last, f"{_id(doc, c)}: image {image} has no tag"
            assert last.rsplit(":", 1)[1] != "latest", f"{_id(doc, c)}: image {image} uses :latest"


@pytest.mark.parametrize("target", OVERLAYS)
def test_apis_probe_healthz_for_liveness_and_readyz_for_readiness(target: str) -> None:
    apis = [(d, p) for d, p in workloads(render(target)) if component(d) == "api"]
    assert len(apis) == len(SERVICES)
    for doc, pod in apis:
        (c,) = pod["containers"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", _id(doc, c)
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", _id(doc, c)
        assert {p["containerPort"] for p in c["ports"]} == {8000}


@pytest.mark.parametrize("target", OVERLAYS)
def test_workers_have_exec_heartbeat_liveness_and_a_tmp_emptydir(target: str) -> None:
    docs = render(target)
    config = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("medal-config")]
    assert len(config) == 1
    assert config[0]["data"]["MEDAL_WORKER_HEARTBEAT_FILE"] == "/tmp/heartbeat"
    workers = [(d, p) for d, p in workloads(docs) if component(d) == "worker"]
    assert len(workers) == len(WORKERS)
    for doc, pod in workers:
        (c,) = pod["containers"]
        command = " ".join(c["livenessProbe"]["exec"]["command"])
        assert "/tmp/heartbeat" in command and "-lt 60" in command, _id(doc, c)
        assert "ports" not in c, f"{_id(doc, c)}: workers serve no HTTP"
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        tmp = [v for v in pod["volumes"] if mounts.get(v["name"]) == "/tmp"]
        assert tmp and "emptyDir" in tmp[0], f"{_id(doc, c)}: /tmp must be an emptyDir"


@pytest.mark.parametrize("target", OVERLAYS)
def test_bus_prefetch_bounded_and_one_for_gpu_work(target: str) -> None:
    docs = render(target)
    for svc in WORKERS:
        worker = by_name(docs, "Deployment", f"medal-{svc}-worker")
        env = {e["name"]: e for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
        prefetch = int(env["MEDAL_BUS_PREFETCH"]["value"])
        assert (prefetch == 1) if svc in LEARN_SERVICES else (1 <= prefetch <= 50), (svc, prefetch)


@pytest.mark.parametrize("target", OVERLAYS)
def test_worker_grace_periods_cover_in_flight_work(target: str) -> None:
    docs = render(target)
    trainer = by_name(docs, "Deployment", "medal-trainer-worker")
    assert trainer["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 300
    for svc in WORKERS:
        worker = by_name(docs, "Deployment", f"medal-{svc}-worker")
        assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


@pytest.mark.parametrize("target", OVERLAYS)
def test_migrations_run_once_as_a_job(target: str) -> None:
    runs_migrate = [
        (doc, c)
        for doc, pod in workloads(render(target))
        for c in containers(pod)
        if "migrate" in (c.get("args") or []) + (c.get("command") or [])
    ]
    assert len(runs_migrate) == 1, [_id(d, c) for d, c in runs_migrate]
    ((doc, c),) = runs_migrate
    assert doc["kind"] == "Job", f"migrations run in a {doc['kind']}"
    assert c["command"] + c["args"] == ["medal", "migrate"]


# --------------------------------------------------------------------------- GPUs


def _gpu_requests_and_limits(docs: tuple[Doc, ...]) -> tuple[set[str], set[str]]:
    requests, limits = set(), set()
    for doc, pod in workloads(docs):
        for c in containers(pod):
            res = c.get("resources", {})
            if GPU in res.get("requests", {}):
                requests.add(_id(doc, c))
            if GPU in res.get("limits", {}):
                limits.add(doc["metadata"]["name"])
    return requests, limits


def test_gpu_overlay_gives_one_gpu_in_limits_to_learning_workers_only() -> None:
    docs = render("gpu")
    requests, limits = _gpu_requests_and_limits(docs)
    assert not requests, f"{GPU} belongs in limits only: {requests}"
    assert limits == {f"medal-{svc}-worker" for svc in LEARN_SERVICES}
    for svc in LEARN_SERVICES:
        pod = by_name(docs, "Deployment", f"medal-{svc}-worker")["spec"]["template"]["spec"]
        assert pod["containers"][0]["resources"]["limits"][GPU] == 1
        assert pod.get("nodeSelector"), f"{svc} worker has no GPU node selector"
        assert any(t.get("key") == GPU for t in pod.get("tolerations", [])), f"{svc}: no GPU toleration"


@pytest.mark.parametrize("target", ("dev", "prod"))
def test_cpu_only_overlays_request_no_gpu(target: str) -> None:
    assert _gpu_requests_and_limits(render(target)) == (set(), set())


# --------------------------------------------------------------------------- R21: KEDA


@pytest.mark.parametrize("target", OVERLAYS)
def test_keda_rabbitmq_triggers_use_the_management_api(target: str) -> None:
    docs = render(target)
    scaled = of_kind(docs, "ScaledObject")
    assert len(scaled) == len(WORKERS)
    auth_names = {d["metadata"]["name"] for d in of_kind(docs, "TriggerAuthentication")}
    for obj in scaled:
        svc = obj["metadata"]["name"].removeprefix("medal-").removesuffix("-worker")
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "rabbitmq"
        # amqp counts only Ready messages: scale-in would kill pods holding unacked work.
        assert trigger["metadata"]["protocol"] == "http", obj["metadata"]["name"]
        assert trigger["metadata"]["queueName"] == QUEUES[svc]
        assert trigger["metadata"].get("vhostName", "medal") == "medal"
        assert "host" not in trigger["metadata"], "the management URL (with password) is a secret"
        assert trigger["authenticationRef"]["name"] in auth_names
    assert not of_kind(docs, "ScaledJob") or all(
        t["metadata"]["protocol"] == "http" for j in of_kind(docs, "ScaledJob") for t in j["spec"]["triggers"]
    )


# --------------------------------------------------------------------------- network


@pytest.mark.parametrize("target", OVERLAYS)
def test_default_deny_network_policy_and_named_allows(target: str) -> None:
    policies = of_kind(render(target), "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny (ingress+egress) NetworkPolicy"

    egress_ports: set[int] = set()
    for p in policies:
        for rule in p["spec"].get("egress", []):
            assert rule.get("to"), f"{p['metadata']['name']}: egress rule without `to` allows everything"
            for peer in rule["to"]:
                cidr = peer.get("ipBlock", {}).get("cidr")
                assert cidr not in ("0.0.0.0/0", "::/0"), f"{p['metadata']['name']}: egress to the internet"
            egress_ports |= {port["port"] for port in rule.get("ports", [])}
        for rule in p["spec"].get("ingress", []):
            assert rule.get("from"), f"{p['metadata']['name']}: ingress rule without `from`"
    assert {53, 5432, 5672, 9000} <= egress_ports, egress_ports

    to_apis = [
        p
        for p in policies
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") == "api"
        and any(port["port"] == 8000 for r in p["spec"].get("ingress", []) for port in r.get("ports", []))
    ]
    assert to_apis, "no NetworkPolicy lets the ingress controller reach the API port"


# --------------------------------------------------------------------------- secrets (R20, R22)


@pytest.mark.parametrize("target", NO_SECRET_VALUES)
def test_no_secret_values_in_base_or_prod(target: str) -> None:
    docs = render(target)
    assert not of_kind(docs, "Secret"), "Secrets are created out of band, never shipped in base/prod"
    for cm in of_kind(docs, "ConfigMap"):
        assert not set(cm.get("data", {})) & set(SECRET_SETTINGS), f"secret setting in {_id(cm)}"
    for doc, pod in workloads(docs):
        for c in containers(pod):
            for env in c.get("env", []):
                if env["name"] in SECRET_SETTINGS or re.search(r"PASSWORD|SECRET|TOKEN", env["name"]):
                    assert "value" not in env, f"{_id(doc, c)}: literal value for {env['name']}"
                    assert "secretKeyRef" in env.get("valueFrom", {}), f"{_id(doc, c)}: {env['name']}"


@pytest.mark.parametrize("target", OVERLAYS)
def test_each_service_uses_its_own_credentials(target: str) -> None:
    docs = render(target)
    for svc in SERVICES:
        for role in ("api", "worker") if svc in WORKERS else ("api",):
            c = by_name(docs, "Deployment", f"medal-{svc}-{role}")["spec"]["template"]["spec"]["containers"][0]
            refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
            for setting in (
                "MEDAL_DATABASE_URL",
                "MEDAL_BROKER_URL",
                "MEDAL_S3_ACCESS_KEY",
                "MEDAL_S3_SECRET_KEY",
            ):
                assert refs[setting] == f"medal-{svc}-credentials", (svc, role, setting)
            # Only ingest pseudonymises, so only ingest holds the de-identification key.
            assert ("MEDAL_DEID_SECRET" in refs) == (svc == "ingest"), (svc, role)


def test_dev_secrets_are_generated_for_every_reference() -> None:
    docs = render("dev")
    secrets = {d["metadata"]["name"]: set(d.get("data", {})) for d in of_kind(docs, "Secret")}
    for doc, pod in workloads(docs):
        for c in containers(pod):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), f"{_id(doc, c)}: {ref}"


# --------------------------------------------------------------------------- compose, Dockerfile


def test_compose_defines_the_apis_the_consumers_workers_migrate_and_dependencies() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    for svc in SERVICES:
        assert services[f"{svc}-api"]["command"] == ["serve", svc]
        if svc in WORKERS:
            assert services[f"{svc}-worker"]["command"] == ["worker", svc]
        else:
            assert f"{svc}-worker" not in services, f"{svc} consumes no messages: no worker"
        image = services[f"{svc}-api"]["image"]
        assert image.startswith("medal-learn" if svc in LEARN_SERVICES else "medal-api"), image
    assert services["migrate"]["command"] == ["migrate"]
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3") and "management" in services["rabbitmq"]["image"]
    assert re.fullmatch(r"minio/minio:RELEASE\.[0-9TZ-]+", services["minio"]["image"])
    assert services["trainer-worker"]["stop_grace_period"] == "300s"
    for name, spec in services.items():
        if name.endswith(("-api", "-worker")):
            assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_dockerfile_has_api_and_learn_targets_running_as_uid_10001() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, flags=re.MULTILINE | re.IGNORECASE)
    assert {"api", "learn"} <= set(stages)
    assert "python:3.11-slim" in text
    assert re.search(r"^USER 10001", text, flags=re.MULTILINE)
    assert "grep -vE '^(torch|monai|matplotlib|nvidia-|triton)' requirements.lock" in text
    assert "pip install --no-deps ." in text
