"""`medal pull` and `medal push`: studies in from a PACS by DICOMweb, de-identified studies out by STOW-RS.

``medal pull --dicomweb URL --project NAME (--study UID ... | --query 'ModalitiesInStudy=CT&StudyDate=…')``
starts a pull job over REST (`POST /ingest/v1/projects/{project}/pulls`) and prints each instance's
outcome as `medal ingest` does; exit 1 if any was refused, 2 if the server cannot be reached or refuses
the request. ``medal push --stow URL --project NAME [--study ID ...]`` sends the project's de-identified
instances to an archive. Without ``--server`` the platform starts in this process (embedded), and the
URL given is added to its allow-list: the operator at this terminal chooses the target. A server only
accepts URLs under ``MEDAL_DICOMWEB_ALLOWED_URLS``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import parse_qsl

import httpx

POLL_SECONDS = 1.0


def register(commands: Any) -> None:
    pull = commands.add_parser("pull", help="pull studies from a PACS by DICOMweb (QIDO-RS, WADO-RS)")
    pull.add_argument("--dicomweb", required=True, help="base URL of the PACS's DICOMweb service")
    pull.add_argument("--project", required=True, help="project slug (a-z, 0-9, -)")
    which = pull.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", action="append", default=[], help="Study Instance UID at the PACS (repeatable)")
    which.add_argument("--query", default=None, help="QIDO-RS study query, e.g. 'ModalitiesInStudy=CT&StudyDate=…'")
    _common(pull)
    pull.set_defaults(func=run_pull)
    push = commands.add_parser("push", help="send a project's de-identified studies to an archive by STOW-RS")
    push.add_argument("--stow", required=True, help="base URL of the archive's DICOMweb service")
    push.add_argument("--project", required=True, help="project slug (a-z, 0-9, -)")
    push.add_argument("--study", action="append", default=[], help="a study id of the project (default: all)")
    _common(push)
    push.set_defaults(func=run_push)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=None, help="base URL of a running platform (default: embedded)")
    parser.add_argument("--api-key", default=None, help="API key for the server (X-API-Key)")


def _server(args: argparse.Namespace, url: str) -> tuple[AbstractContextManager[str], str | None]:
    if args.server:
        return nullcontext(args.server.rstrip("/")), args.api_key
    from medal.app import build_app
    from medal.local_server import serve_in_thread
    from medal.preflight import load_settings

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.dicomweb_allowed_urls = [*settings.dicomweb_allowed_urls, url]
    api_key = args.api_key or (settings.api_keys[0].get_secret_value() if settings.api_keys else None)
    return serve_in_thread(build_app(settings, ["ingest", "annotation"], consume=True, migrate=True)), api_key


def _error(response: httpx.Response) -> str:
    is_json = response.headers.get("content-type", "").startswith("application/json")
    error = response.json().get("error", {}) if is_json else {}
    return f"HTTP {response.status_code}: {error.get('message', response.text[:200])}"


def run_pull(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"dicomweb": args.dicomweb}
    if args.query is not None:
        body["query"] = dict(parse_qsl(args.query, keep_blank_values=False))
    else:
        body["studies"] = args.study
    server, api_key = _server(args, args.dicomweb)
    headers = {"X-API-Key": api_key} if api_key else {}
    counts: Counter[str] = Counter()
    try:
        with server as base, httpx.Client(timeout=60, headers=headers) as client:
            started = client.post(f"{base}/ingest/v1/projects/{args.project}/pulls", json=body)
            if started.status_code != 202:
                print(f"medal pull: refused: {_error(started)}", file=sys.stderr)
                return 2
            job_id = started.json()["job_id"]
            printed = 0
            while True:
                report = client.get(f"{base}/ingest/v1/jobs/{job_id}").json()
                for result in report["results"][printed:]:
                    counts[result["outcome"]] += 1
                    reason = result.get("reason") if result["outcome"] != "accepted" else None
                    detail = f"  {result.get('code') or ''}: {reason}" if reason else ""
                    print(f"{result['outcome']:<11} instance {result['index'] + 1}{detail}")
                printed = len(report["results"])
                if report["job"]["status"] == "completed":
                    break
                time.sleep(POLL_SECONDS)
    except httpx.HTTPError as exc:
        print(f"medal pull: cannot reach the server ({type(exc).__name__})", file=sys.stderr)
        return 2
    print(
        f"medal pull: {sum(counts.values())} instances: {counts['accepted']} accepted, "
        f"{counts['quarantined']} quarantined, {counts['duplicate']} duplicates, {counts['refused']} refused; "
        f"job: {job_id}"
    )
    return 1 if counts["refused"] else 0


def run_push(args: argparse.Namespace) -> int:
    server, api_key = _server(args, args.stow)
    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        with server as base, httpx.Client(timeout=3600, headers=headers) as client:
            answer = client.post(
                f"{base}/ingest/v1/projects/{args.project}/pushes", json={"stow": args.stow, "study_ids": args.study}
            )
    except httpx.HTTPError as exc:
        print(f"medal push: cannot reach the server ({type(exc).__name__})", file=sys.stderr)
        return 2
    if answer.status_code != 200:
        print(f"medal push: refused: {_error(answer)}", file=sys.stderr)
        return 2
    report = answer.json()
    for result in report["results"]:
        detail = f"  {result['code']}: {result['reason']}" if result["outcome"] != "sent" else ""
        print(f"{result['outcome']:<7} {result['instance_id']}{detail}")
    print(f"medal push: {report['sent']} sent, {report['failed']} failed")
    return 1 if report["failed"] else 0
