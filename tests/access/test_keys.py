"""Project API keys: created (shown once), listed, revoked; through the CLI (database or --server) and REST."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest

from medal.access.keys import KEY_PATTERN, hash_key
from medal.cli import main
from tests.access.conftest import PLATFORM_KEY, Served


def medal(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_keys_in_the_database_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDAL_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MEDAL_DATABASE_URL", raising=False)
    assert main(["keys", "list"]) == 2  # not migrated: one clear line, exit 2
    assert "medal migrate" in capsys.readouterr().err
    assert medal(capsys, "migrate")[0] == 0
    code, out = medal(capsys, "keys", "create", "--project", "alpha", "--role", "reviewer", "--name", "nightly import")
    assert code == 0
    key = out.split()[-1]
    assert KEY_PATTERN.match(key), out
    key_id = key.split("_")[1]

    code, out = medal(capsys, "keys", "list")
    assert code == 0 and key_id in out and "reviewer" in out and "nightly import" in out and "active" in out
    assert key not in out
    stored = sqlite3.connect(tmp_path / "medal.db").execute("SELECT secret_sha256 FROM access_api_keys").fetchall()
    assert stored == [(hash_key(key),)]
    assert key.split("_", 2)[2].encode() not in (tmp_path / "medal.db").read_bytes()

    assert medal(capsys, "keys", "revoke", key_id) == (0, f"revoked key {key_id} of alpha\n")
    assert "revoked 20" in medal(capsys, "keys", "list", "--project", "alpha")[1]
    assert medal(capsys, "keys", "list", "--project", "beta")[1] == "no API keys\n"
    code, out = medal(capsys, "keys", "create", "--project", "alpha", "--role", "overlord")
    assert code == 1 and "unknown role" in out
    audit = sqlite3.connect(tmp_path / "medal.db").execute("SELECT action, subject_id FROM access_audit").fetchall()
    assert audit == [("key-created", key_id), ("key-revoked", key_id)]


def test_keys_through_a_running_medal(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MEDAL_API_KEYS", raising=False)
    server = served.base.removesuffix("/annotation")
    remote = ("--server", server, "--api-key", PLATFORM_KEY)
    code, out = medal(capsys, "keys", "create", "--project", "alpha", "--role", "project-admin", *remote)
    assert code == 0, out
    admin_key = out.split()[-1]
    # The project admin's key may now make keys of its own project, and no other.
    as_admin = ("--server", server, "--api-key", admin_key)
    code, out = medal(
        capsys, "keys", "create", "--project", "alpha", "--role", "annotator", "--name", "scanner", *as_admin
    )
    assert code == 0, out
    annotator_key = out.split()[-1]
    code, out = medal(capsys, "keys", "create", "--project", "beta", "--role", "annotator", *as_admin)
    assert code == 1 and "404" in out and "no project named beta" in out
    code, out = medal(capsys, "keys", "list", *as_admin)
    assert code == 0 and "scanner" in out and "beta" not in out
    annotator_id = annotator_key.split("_")[1]

    me = httpx.get(f"{served.base}/v1/me", headers={"X-API-Key": annotator_key}).json()
    assert me["kind"] == "api-key" and me["projects"] == {
        "alpha": {"role": "annotator", "actions": me["projects"]["alpha"]["actions"]}
    }
    assert medal(capsys, "keys", "revoke", annotator_id, *as_admin)[0] == 0
    refused = httpx.get(f"{served.base}/v1/me", headers={"X-API-Key": annotator_key})
    assert refused.status_code == 401 and refused.json()["error"]["details"] == [{"reason": "revoked-key"}]
    code, out = medal(capsys, "keys", "list", "--server", server, "--api-key", annotator_key)
    assert code == 1 and "revoked" in out


def test_keys_over_rest_for_project_admins_only(served: Served) -> None:
    platform = {"X-API-Key": PLATFORM_KEY}
    created = httpx.post(
        f"{served.base}/v1/keys", json={"project": "beta", "role": "reviewer", "label": "qa"}, headers=platform
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["role"] == "reviewer" and body["created_by"].startswith("key-") and body["last_used_at"] is None
    reviewer = {"X-API-Key": body["key"]}
    assert httpx.get(f"{served.base}/v1/projects/beta/images", headers=reviewer).status_code == 200
    # A reviewer may not manage keys; another project's key is not even visible to it.
    assert (
        httpx.post(
            f"{served.base}/v1/keys", json={"project": "beta", "role": "annotator"}, headers=reviewer
        ).status_code
        == 403
    )
    assert httpx.get(f"{served.base}/v1/keys", headers=reviewer).json() == {"keys": []}
    listed = httpx.get(f"{served.base}/v1/keys", params={"project": "beta"}, headers=platform).json()["keys"]
    mine = next(k for k in listed if k["id"] == body["id"])
    assert mine["last_used_at"] is not None and "key" not in mine
    other = httpx.post(
        f"{served.base}/v1/keys", json={"project": "alpha", "role": "project-admin"}, headers=platform
    ).json()
    foreign = httpx.delete(f"{served.base}/v1/keys/{body['id']}", headers={"X-API-Key": other["key"]})
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "key-not-found"
    bad = httpx.post(f"{served.base}/v1/keys", json={"project": "Beta!", "role": "reviewer"}, headers=platform)
    assert bad.status_code == 422
    revoked = httpx.delete(f"{served.base}/v1/keys/{body['id']}", headers=platform)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    again = httpx.delete(f"{served.base}/v1/keys/{body['id']}", headers=platform)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    entries = httpx.get(f"{served.base}/v1/projects/beta/audit", headers=platform).json()["entries"]
    assert [e["action"] for e in entries if e["subject_id"] == body["id"]] == ["key-created", "key-revoked"]


def test_the_open_laptop_mode_still_honours_project_keys(tmp_path: Path) -> None:
    from medal.access.keys import create_key
    from medal.db.engine import Database
    from medal.db.migrate import upgrade
    from medal.local_server import serve_in_thread
    from medal.settings import Settings
    from tests.access.conftest import guarded_app

    settings = Settings(data_dir=tmp_path, api_keys=[])
    upgrade(settings.effective_database_url)

    async def make() -> str:
        db = Database(settings.effective_database_url)
        async with db.begin() as conn:
            _, key = await create_key(conn, project="alpha", role="annotator", label="", created_by="test")
        await db.dispose()
        return key

    key = asyncio.run(make())
    with serve_in_thread(guarded_app(settings)) as base:
        assert httpx.get(f"{base}/annotation/v1/me").json()["id"] == "local"
        assert httpx.get(f"{base}/annotation/v1/me", headers={"X-API-Key": "anything"}).json()["id"] == "local"
        assert httpx.get(f"{base}/annotation/v1/projects/alpha/images", headers={"X-API-Key": key}).status_code == 200
        assert httpx.post(f"{base}/annotation/v1/projects/alpha/rounds", headers={"X-API-Key": key}).status_code == 403
