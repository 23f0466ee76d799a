"""`medal models list|compare|promote|rollback --project NAME [--server URL]`: the trainer's model registry.

Talks to the trainer's REST API of a running medal (`medal up`, or `medal serve trainer`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from medal.preflight import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, compare, promote or roll back a project's model versions")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every version with its round, labels, Dice, status and who promoted it")
    compare = actions.add_parser("compare", help="two versions side by side")
    compare.add_argument("a", type=int)
    compare.add_argument("b", type=int)
    promote = actions.add_parser("promote", help="make a version the project's current model")
    promote.add_argument("version", type=int)
    rollback = actions.add_parser("rollback", help="make the previously current version current again")
    for action in (listing, compare, promote, rollback):
        action.add_argument("--project", required=True)
        action.add_argument("--server", default=None, help="base URL of medal (default: MEDAL_HOST:MEDAL_PORT)")
        action.add_argument("--api-key", default=None, help="API key (default: the first of MEDAL_API_KEYS)")
    parser.set_defaults(func=run)


class CommandFailed(Exception):
    pass


def _client(args: argparse.Namespace) -> httpx.Client:
    settings = load_settings()
    server = args.server or f"http://{settings.host}:{settings.port}"
    key = args.api_key or (settings.api_keys[0].get_secret_value() if settings.api_keys else None)
    headers = {"X-API-Key": key} if key else {}
    return httpx.Client(
        base_url=f"{server.rstrip('/')}/trainer/v1/projects/{args.project}", headers=headers, timeout=60
    )


def _call(client: httpx.Client, method: str, path: str, **params: Any) -> Any:
    try:
        response = client.request(method, path, params=params or None)
    except httpx.HTTPError as exc:
        raise CommandFailed(f"cannot reach {client.base_url}: {type(exc).__name__}") from None
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise CommandFailed(f"{response.status_code}: {message}")
    return response.json()


def _line(version: dict[str, Any]) -> str:
    return (
        f"{version['version']:>7}  {version['status']:9}  {version['round_number']:>5}  {version['labels']:>6}  "
        f"{version['validation_dice']:>6.3f}  {len(version['members']):>7}  {version['created_at'][:19]}  "
        f"{version.get('promoted_by') or '-'}"
    )


HEADER = (
    f"{'version':>7}  {'status':9}  {'round':>5}  {'labels':>6}  {'dice':>6}  {'members':>7}  {'created':19}  "
    "promoted by"
)


def run(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            if args.action == "list":
                versions = _call(client, "GET", "/models")["versions"]
                if not versions:
                    print(f"{args.project} has no model versions yet")
                    return 0
                print(HEADER)
                for version in versions:
                    print(_line(version))
            elif args.action == "compare":
                result = _call(client, "GET", "/models/compare", a=args.a, b=args.b)
                print(HEADER)
                print(_line(result["a"]))
                print(_line(result["b"]))
                print(
                    f"version {args.b} vs {args.a}: Dice {result['validation_dice_change']:+.3f}, "
                    f"labels {result['labels_added']:+d}"
                )
            elif args.action == "promote":
                version = _call(client, "POST", f"/models/{args.version}/promote")
                print(f"{args.project}: version {version['version']} is current")
            else:
                version = _call(client, "POST", "/models/rollback")
                print(f"{args.project}: rolled back; version {version['version']} is current")
    except CommandFailed as exc:
        print(f"medal models: {exc}", file=sys.stderr)
        return 1
    return 0
