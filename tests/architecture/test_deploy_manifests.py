"""Project rules for the deployment manifests (reliability notes T11 / R20, R21, R22).

Each kustomize overlay is rendered with the built-in kustomize of ``kubectl`` (offline) and the
resulting objects are checked with plain Python: resources, probes, Pod Security "restricted",
image tags, GPUs, KEDA triggers, NetworkPolicies, secrets, grace periods, the migration Job.
The compose file and the Dockerfile get a few structural checks too.
"""

from __future__ import annotations

import re

import pytest
import yaml

from proto.topology import SERVICE_QUEUE
from tests.architecture.deploy_support import (
    COMPOSE,
    DOCKERFILE,
    LEARN_SERVICES,
    OVERLAYS,
    SECRETS_DIR,
    SERVICES,
    WORKER_SERVICES,
    Doc,
    by_name,
    component,
    config,
    containers,
    env_of,
    mounted_secret_files,
    of_kind,
    render,
    workloads,
)
from tests.architecture.deploy_support import ident as _id

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
GPU = "nvidia.com/gpu"


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("target", ("base", *OVERLAYS))
def test_overlay_renders(target: str) -> None:
    docs = render(target)
    assert docs
    assert all(d.get("metadata", {}).get("namespace") in (None, "medal") for d in docs)


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_service_has_api_worker_service_hpa_pdb_scaledobject(target: str) -> None:
    docs = render(target)
    for svc in SERVICES:
        api = by_name(docs, "Deployment", f"medal-{svc}-api")
        assert api["spec"]["template"]["spec"]["containers"][0]["args"] == ["serve", svc]
        assert component(api) == "api"
        by_name(docs, "Service", f"medal-{svc}")
        hpa = by_name(docs, "HorizontalPodAutoscaler", f"medal-{svc}-api")
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"medal-{svc}-api"
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        by_name(docs, "PodDisruptionBudget", f"medal-{svc}-api")
        names = {d["metadata"]["name"] for d in docs}
        if svc not in WORKER_SERVICES:  # no queue (proto/topology.py): no worker, nothing to scale
            assert not {f"medal-{svc}-worker"} & names, f"{svc} has no queue but a worker"
            continue
        worker = by_name(docs, "Deployment", f"medal-{svc}-worker")
        assert worker["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker", svc]
        assert component(worker) == "worker"
        scaled = by_name(docs, "ScaledObject", f"medal-{svc}-worker")
        assert scaled["spec"]["scaleTargetRef"]["name"] == f"medal-{svc}-worker"
        # A node drain takes at most one worker of a service at a time.
        pdb = by_name(docs, "PodDisruptionBudget", f"medal-{svc}-worker")
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
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


@pytest.mark.parametrize("target", ("prod", "gpu"))
def test_production_images_are_pinned_by_digest(target: str) -> None:
    """The release pipeline sets the digests (deploy/README.md §1); a tag can move, a digest cannot."""
    for doc, pod in workloads(render(target)):
        for c in containers(pod):
            assert re.fullmatch(r"[a-z0-9.-]+(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}", c["image"]), _id(doc, c)


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
    assert config(docs)["MEDAL_WORKER_HEARTBEAT_FILE"] == "/tmp/heartbeat"
    workers = [(d, p) for d, p in workloads(docs) if component(d) == "worker"]
    assert len(workers) == len(WORKER_SERVICES)
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
    for svc in WORKER_SERVICES:
        worker = by_name(docs, "Deployment", f"medal-{svc}-worker")
        env = env_of(worker["spec"]["template"]["spec"]["containers"][0])
        prefetch = int(env["MEDAL_BUS_PREFETCH"]["value"])
        assert (prefetch == 1) if svc in LEARN_SERVICES else (1 <= prefetch <= 50), (svc, prefetch)


@pytest.mark.parametrize("target", OVERLAYS)
def test_worker_grace_periods_cover_in_flight_work(target: str) -> None:
    docs = render(target)
    # On SIGTERM a trainer stops at the end of the epoch and hands its lease back
    # (services/trainer/runner.py): the grace period must outlast the longest epoch.
    trainer = by_name(docs, "Deployment", "medal-trainer-worker")
    assert trainer["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 600
    for svc in WORKER_SERVICES:
        worker = by_name(docs, "Deployment", f"medal-{svc}-worker")
        assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    # An upload in flight during a rollout gets time to finish.
    ingest = by_name(docs, "Deployment", "medal-ingest-api")
    assert ingest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 300


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
    assert len(scaled) == len(WORKER_SERVICES)
    auth_names = {d["metadata"]["name"] for d in of_kind(docs, "TriggerAuthentication")}
    for obj in scaled:
        svc = obj["metadata"]["name"].removeprefix("medal-").removesuffix("-worker")
        (trigger,) = [t for t in obj["spec"]["triggers"] if t["type"] == "rabbitmq"]
        # amqp counts only Ready messages: scale-in would kill pods holding unacked work.
        assert trigger["metadata"]["protocol"] == "http", obj["metadata"]["name"]
        assert trigger["metadata"]["queueName"] == SERVICE_QUEUE[svc]
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
                    pytest.fail(f"{_id(doc, c)}: {env['name']} as an environment variable; mount it as a file")


@pytest.mark.parametrize("target", OVERLAYS)
def test_secrets_arrive_as_files_in_the_settings_secrets_dir(target: str) -> None:
    """medal reads one file per setting from MEDAL_SECRETS_DIR (Settings.from_environment)."""
    docs = render(target)
    assert config(docs)["MEDAL_SECRETS_DIR"] == SECRETS_DIR
    for doc, pod in workloads(docs):
        if not doc["metadata"]["name"].startswith("medal-"):
            continue  # dev dependencies (postgres, rabbitmq, minio)
        for c in containers(pod):
            assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in c.get("env", [])), _id(doc, c)
            assert not any("secretRef" in e for e in c.get("envFrom", [])), _id(doc, c)
            mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == SECRETS_DIR]
            assert len(mounts) == 1 and mounts[0].get("readOnly") is True, f"{_id(doc, c)}: secrets not mounted"
            volume = next(v for v in pod["volumes"] if v["name"] == mounts[0]["name"])
            assert volume["projected"]["defaultMode"] == 0o440, f"{_id(doc, c)}: secret files readable by others"


@pytest.mark.parametrize("target", OVERLAYS)
def test_each_service_uses_its_own_credentials(target: str) -> None:
    docs = render(target)
    for svc in SERVICES:
        for role in ("api", "worker") if svc in WORKER_SERVICES else ("api",):
            deployment = by_name(docs, "Deployment", f"medal-{svc}-{role}")
            pod = deployment["spec"]["template"]["spec"]
            files = mounted_secret_files(pod, pod["containers"][0])
            for setting in ("MEDAL_DATABASE_URL", "MEDAL_BROKER_URL", "MEDAL_S3_ACCESS_KEY", "MEDAL_S3_SECRET_KEY"):
                assert files[setting][0] == f"medal-{svc}-credentials", (svc, role, setting)
            # Only ingest pseudonymises, so only ingest holds the de-identification key.
            assert ("MEDAL_DEID_SECRET" in files) == (svc == "ingest"), (svc, role)
            # Only the HTTP APIs check API keys.
            assert ("MEDAL_API_KEYS" in files) == (role == "api"), (svc, role)
    migrate = by_name(docs, "Job", "medal-migrate")["spec"]["template"]["spec"]
    assert mounted_secret_files(migrate, migrate["containers"][0]) == {
        "MEDAL_DATABASE_URL": ("medal-migrate-credentials", "database-url")
    }


def test_dev_secrets_are_generated_for_every_reference() -> None:
    docs = render("dev")
    secrets = {d["metadata"]["name"]: set(d.get("data", {})) for d in of_kind(docs, "Secret")}
    for doc, pod in workloads(docs):
        for c in containers(pod):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), f"{_id(doc, c)}: {ref}"
            for secret, key in mounted_secret_files(pod, c).values():
                assert key in secrets.get(secret, set()), f"{_id(doc, c)}: {secret}/{key}"
    for auth in of_kind(docs, "TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets.get(ref["name"], set()), f"{_id(auth)}: {ref}"


# --------------------------------------------------------------------------- compose, Dockerfile


def test_compose_defines_the_processes_migrate_and_dependencies() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    for svc in SERVICES:
        assert services[f"{svc}-api"]["command"] == ["serve", svc]
        image = services[f"{svc}-api"]["image"]
        assert image.startswith("medal-learn" if svc in LEARN_SERVICES else "medal-api"), image
        if svc in WORKER_SERVICES:
            assert services[f"{svc}-worker"]["command"] == ["worker", svc]
        else:
            assert f"{svc}-worker" not in services, f"{svc} has no queue, hence no worker"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["postgres"]["image"].startswith("postgres:15.")
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.") and "management" in services["rabbitmq"]["image"]
    assert re.fullmatch(r"minio/minio:RELEASE\.[0-9TZ-]+", services["minio"]["image"])
    assert services["trainer-worker"]["stop_grace_period"] == "900s"
    for name, spec in services.items():
        if name.endswith(("-api", "-worker")):
            assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_compose_pins_every_image_to_an_exact_release() -> None:
    """No floating tags: a full version (x.y.z or x.y plus a suffix) or a dated release, never `latest`."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, spec in services.items():
        image = spec["image"]
        if "@sha256:" in image:
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?|RELEASE\.[0-9TZ-]+", tag), f"{name}: floating tag {image}"
        if repo in ("medal-api", "medal-learn"):  # built by compose from this checkout
            assert spec.get("build"), f"{name}: {image} is built here"


def test_compose_file_has_no_keys_compose_v1_rejects() -> None:
    """v1 (docker-compose 1.29) validates against the compose spec of 2021, with no top-level `name`;
    v2 calls `version` obsolete. The full schema check is in test_deploy_validators.py."""
    compose = yaml.safe_load(COMPOSE.read_text())
    assert set(compose) - {"services", "volumes", "networks", "secrets", "configs"} <= {
        key for key in compose if key.startswith("x-")
    }, sorted(compose)


def test_dockerfile_has_api_and_learn_targets_running_as_uid_10001() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, flags=re.MULTILINE | re.IGNORECASE)
    assert {"api", "learn"} <= set(stages)
    assert "python:3.11-slim" in text
    assert re.search(r"^USER 10001", text, flags=re.MULTILINE)
    assert "grep -vE '^(torch|monai|matplotlib|nvidia-|triton)' requirements.lock" in text
    assert "pip install --no-deps ." in text
