"""The architecture, enforced: who may import whom, who owns which tables, what stays small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "annotation", "trainer", "query", "inference")
OWN_TABLE_MODULES = {"messaging", "base"}


def python_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.py") if "migrations/versions" not in p.as_posix()]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another_service(service: str) -> None:
    offenders = []
    for path in python_files(ROOT / "services" / service):
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] != service:
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


@pytest.mark.parametrize("service", SERVICES)
def test_services_touch_only_their_own_tables(service: str) -> None:
    offenders = []
    for path in python_files(ROOT / "services" / service):
        for module in imported_modules(path):
            if module.startswith("medal.db.schema."):
                owner = module.split(".")[3]
                if owner not in {service, *OWN_TABLE_MODULES}:
                    offenders.append(f"{path.relative_to(ROOT)} uses tables of {owner}")
    assert offenders == []


def test_proto_imports_nothing_from_services_or_the_shared_package() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in python_files(ROOT / "proto")
        for module in imported_modules(path)
        if module.split(".")[0] in {"services", "medal"}
    ]
    assert offenders == []


def test_shared_package_does_not_import_services_except_at_the_composition_roots() -> None:
    # Composition roots that wire services together: CLI commands, the engine simulator and the demo.
    allowed = {
        "medal/simulate",
        "medal/demo",
        "medal/export_cli.py",
        "medal/ingest_cli.py",
        "medal/pull_cli.py",
        "medal/models_cli.py",
    }
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in python_files(ROOT / "medal")
        if not any(path.relative_to(ROOT).as_posix().startswith(a) for a in allowed)
        for module in imported_modules(path)
        if module.split(".")[0] == "services"
    ]
    assert offenders == []


def test_ingest_and_annotation_never_load_torch() -> None:
    """Their container image has no PyTorch: importing and serving them must not need it."""
    code = (
        "import sys\n"
        "from medal.cli import build_parser\n"
        "from medal.app import build_app\n"
        "from medal.settings import Settings\n"
        "import services.ingest.api, services.annotation.handlers\n"
        "build_parser(with_simulate=False)\n"
        "build_app(Settings(), ['ingest', 'annotation'], consume=False)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai'))\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    static = [
        f"{path.relative_to(ROOT)} imports {module}"
        for service in ("ingest", "annotation")
        for path in python_files(ROOT / "services" / service)
        for module in imported_modules(path)
        if module.split(".")[0] in {"torch", "monai", "medal"}
        and (module.split(".")[0] != "medal" or module.startswith(("medal.model", "medal.compute", "medal.simulate")))
    ]
    assert static == []


def test_cli_for_a_service_does_not_load_torch() -> None:
    code = (
        "import sys\nfrom medal import cli\n"
        "try:\n    cli.main(['serve', 'ingest'])\nexcept SystemExit:\n    pass\n"
        "sys.exit(1 if 'torch' in sys.modules else 0)\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr


def called_names(path: Path) -> set[str]:
    """Every ``name(...)`` and ``x.name(...)`` called, and every exception class raised, in a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            names.add(exc.attr if isinstance(exc, ast.Attribute) else getattr(exc, "id", ""))
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_services_leave_the_inbox_outbox_and_relay_to_the_unit_of_work(service: str) -> None:
    """The ritual (claim the inbox, record the outbox, wake the relay) lives in medal.unit_of_work only."""
    ritual = {"claim_message", "add_to_outbox", "notify", "PermanentFailure"}
    offenders = {
        str(path.relative_to(ROOT)): sorted(used)
        for path in python_files(ROOT / "services" / service)
        if (used := called_names(path) & ritual)
    }
    assert offenders == {}


@pytest.mark.parametrize("service", SERVICES)
def test_routes_take_the_platform_from_the_typed_dependency(service: str) -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in python_files(ROOT / "services" / service)
        if "app.state.platform" in path.read_text()
    ]
    assert offenders == []


@pytest.mark.parametrize("folder", ["medal", "services", "proto"])
def test_modules_stay_small(folder: str) -> None:
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in python_files(ROOT / folder)
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert too_long == {}
