"""Every rendered overlay passes the standard validators, offline (issue 11, item 5).

- ``kubernetes-validate --strict``: each object against the OpenAPI schema of the oldest Kubernetes
  that deploy/README.md supports and of a recent one (schemas shipped in the package, no network);
  unknown fields are errors. KEDA's CRDs have no schema there (a warning, checked by the manifest tests).
- ``checkov``: no failed check; a check skipped in a manifest (``checkov.io/skipN`` annotation)
  must say why.
- The compose file against the schema docker-compose v1 validates with (v2 accepts a superset).

The tools come from ``make setup`` (.venv/tools, requirements-tools.lock); see deploy_support.tool.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.architecture.deploy_support import COMPOSE, OVERLAYS, TOOLS, Doc, missing, render, render_text, tool

#: The oldest Kubernetes the README supports, and a recent release.
KUBERNETES_VERSIONS = ("1.27.0", "1.32.0")
#: CRDs without a schema in kubernetes-validate; their shape is checked by test_deploy_manifests.py.
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}
MIN_REASON = 20


def _rendered_file(target: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{target}.yaml"
    path.write_text(render_text(target))
    return path


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", OVERLAYS)
def test_kubernetes_validate_strict(target: str, version: str, tmp_path: Path) -> None:
    validator = tool("kubernetes-validate")
    manifest = _rendered_file(target, tmp_path)
    result = subprocess.run(
        [validator, "--strict", "--quiet", "-k", version, str(manifest)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    unexpected = [
        line for line in lines if not any(f"kind {kind} with api version {api}" in line for api, kind in CRD_KINDS)
    ]
    assert result.returncode == 0 and not unexpected, "\n".join(unexpected)
    kinds = {(d["apiVersion"], d["kind"]) for d in render(target)}
    assert kinds >= CRD_KINDS  # the warnings filtered above are about objects that exist


def _checkov(target: str, tmp_path: Path) -> Doc:
    checkov = tool("checkov")
    manifest = _rendered_file(target, tmp_path)
    result = subprocess.run(
        [checkov, "--file", str(manifest), "--framework", "kubernetes", "--output", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},  # checkov may write caches under HOME
    )
    assert result.stdout.strip(), f"checkov printed nothing (rc {result.returncode}):\n{result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    assert isinstance(report, dict), report  # one framework: one report
    return report


@pytest.mark.parametrize("target", OVERLAYS)
def test_checkov_finds_nothing_or_each_skip_has_a_written_reason(target: str, tmp_path: Path) -> None:
    report = _checkov(target, tmp_path)
    results = report["results"]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]]
    assert failed == []
    assert results["passed_checks"], "checkov checked nothing"
    for check in results["skipped_checks"]:
        reason = (check.get("check_result", {}).get("suppress_comment") or "").strip()
        assert len(reason) >= MIN_REASON, f"{check['check_id']} on {check['resource']} skipped without a reason"
    if target in ("prod", "gpu"):  # production skips nothing
        assert results["skipped_checks"] == []


def _compose_v1_schema() -> Doc:
    wheels = sorted((TOOLS / "share" / "compose-v1").glob("docker_compose-1.*.whl"))
    if not wheels:
        missing("the docker-compose v1 wheel (its JSON schema)")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        schema: Doc = json.loads(wheel.read("compose/config/compose_spec.json"))
    return schema


def test_compose_file_is_accepted_by_compose_v1() -> None:
    schema = _compose_v1_schema()
    compose = yaml.safe_load(COMPOSE.read_text())
    # docker-compose 1.x validates with Draft 4 and without a `version:` key reads the compose spec.
    assert "version" not in compose
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft4Validator(schema).iter_errors(compose)
    ]
    assert errors == []
    # The check rejects what v1 rejects: the top-level `name:` of v2 files.
    assert list(jsonschema.Draft4Validator(schema).iter_errors({**compose, "name": "medal"}))
