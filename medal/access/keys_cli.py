"""`medal keys create|list|revoke`: project API keys, in the database directly or through a running medal.

Without ``--server`` the command works on the database of ``MEDAL_DATABASE_URL`` (or the embedded one),
as ``medal migrate`` does, acting as whoever runs it on this machine; with ``--server URL`` it calls
``/annotation/v1/keys`` with ``--api-key`` (default: the first of ``MEDAL_API_KEYS``), as a project admin.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from typing import Any

import httpx

from medal.access import audit
from medal.access import keys as key_store
from medal.access.caller import Caller
from medal.access.roles import ROLE_NAMES
from medal.db.engine import Database, DatabaseError
from medal.domain_errors import DomainError
from medal.preflight import ConfigurationError, load_settings

HEADER = (
    f"{'id':12}  {'project':20}  {'role':13}  {'label':20}  {'created by':16}  {'created':19}  {'last used':19}  state"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="create, list or revoke project API keys")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a new key for a project and a role (printed once, as the last word)")
    create.add_argument("--project", required=True)
    create.add_argument("--role", required=True, help=", ".join(ROLE_NAMES))
    create.add_argument("--name", default="", help="a label: what or who the key is for")
    listing = actions.add_parser("list", help="every key: id, project, role, label, creator, dates, revoked")
    listing.add_argument("--project", default=None)
    revoke = actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("id")
    for action in (create, listing, revoke):
        action.add_argument("--server", default=None, help="base URL of a running medal (default: the database)")
        action.add_argument("--api-key", default=None, help="API key for --server (default: first of MEDAL_API_KEYS)")
    parser.set_defaults(func=run)


class CommandFailed(Exception):
    pass


def _row(key: dict[str, Any]) -> str:
    state = "revoked " + key["revoked_at"][:19] if key["revoked"] else "active"
    return (
        f"{key['id']:12}  {key['project']:20}  {key['role']:13}  {key['label'][:20]:20}  {key['created_by'][:16]:16}  "
        f"{key['created_at'][:19]:19}  {(key['last_used_at'] or 'never')[:19]:19}  {state}"
    )


def _print(action: str, result: Any) -> None:
    if action == "create":
        print(f"created key {result['id']} for {result['project']} ({result['role']}); it is shown only now:")
        print(result["key"])
    elif action == "list":
        if not result:
            print("no API keys")
            return
        print(HEADER)
        for key in result:
            print(_row(key))
    else:
        print(f"revoked key {result['id']} of {result['project']}")


def _over_rest(args: argparse.Namespace) -> Any:
    settings = load_settings()
    token = args.api_key or (settings.api_keys[0].get_secret_value() if settings.api_keys else None)
    headers = {"X-API-Key": token} if token else {}
    base = f"{args.server.rstrip('/')}/annotation/v1/keys"
    try:
        with httpx.Client(headers=headers, timeout=60) as client:
            if args.action == "create":
                body = {"project": args.project, "role": args.role, "label": args.name}
                response = client.post(base, json=body)
            elif args.action == "list":
                response = client.get(base, params={"project": args.project} if args.project else None)
            else:
                response = client.delete(f"{base}/{args.id}")
    except httpx.HTTPError as exc:
        raise CommandFailed(f"cannot reach {args.server}: {type(exc).__name__}") from None
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise CommandFailed(f"{response.status_code}: {message}")
    result = response.json()
    return result["keys"] if args.action == "list" else result


async def _in_database(args: argparse.Namespace) -> Any:
    settings = load_settings()
    database = Database(settings.effective_database_url)
    operator = Caller(id=f"cli:{getpass.getuser()}"[:255], kind="local", name="medal keys", platform_admin=True)
    try:
        await database.check()
        async with database.begin() as conn:
            if args.action == "create":
                record, key = await key_store.create_key(
                    conn, project=args.project, role=args.role, label=args.name, created_by=operator.id
                )
                details = {"role": record.role.label, "label": record.label}
                await audit.record(conn, operator, "key-created", record.project, "key", record.id, details)
                return {**record.as_json(), "key": key}
            if args.action == "list":
                projects = frozenset({args.project}) if args.project else None
                return [k.as_json() for k in await key_store.list_keys(conn, projects=projects)]
            before = await key_store.get_key(conn, args.id)
            revoked = await key_store.revoke_key(conn, args.id, revoked_by=operator.id)
            if not before.revoked:
                await audit.record(conn, operator, "key-revoked", revoked.project, "key", revoked.id)
            return revoked.as_json()
    except DatabaseError as exc:
        raise ConfigurationError(f"{exc} (run `medal migrate` first)") from None
    except DomainError as exc:
        raise CommandFailed(exc.message) from None
    finally:
        await database.dispose()


def run(args: argparse.Namespace) -> int:
    try:
        result = _over_rest(args) if args.server else asyncio.run(_in_database(args))
    except CommandFailed as exc:
        print(f"medal keys: {exc}")
        return 1
    _print(args.action, result)
    return 0
