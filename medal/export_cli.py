"""`medal export --project NAME --format png|nifti|dicom-seg|coco --out DIR [--server URL]`, and
`medal export --project NAME --format dicom-seg --stow URL [--reference original] [--server URL]`.

With ``--stow`` the SEG objects go to an archive by STOW-RS (`POST /annotation/v1/projects/{p}/exports/stow`)
and each image's outcome is printed; exit 1 if any failed, 2 if the request was refused. Without
``--server`` the platform starts in this process and the URL given joins its allow-list (the operator at
this terminal chooses the target), as for `medal push`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx

from medal.preflight import load_settings

FORMATS = ("png", "nifti", "dicom-seg", "coco")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="write a project's labelled data set to a folder")
    parser.add_argument("--project", required=True)
    parser.add_argument("--format", required=True, choices=FORMATS)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="a new folder for the files")
    target.add_argument("--stow", default=None, help="send the SEG objects to this archive (DICOMweb base URL)")
    parser.add_argument(
        "--reference",
        choices=("deidentified", "original"),
        default="deidentified",
        help="with --stow: reference medal's de-identified instances (default) or, for the clinical PACS, the "
        "original ones (project admins; the project must keep original UIDs)",
    )
    parser.add_argument("--server", default=None, help="a running medal (default: embedded state in MEDAL_DATA_DIR)")
    parser.add_argument("--api-key", default=None, help="API key for the server (X-API-Key)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.stow is not None:
        if args.format != "dicom-seg":
            print("medal export: --stow sends DICOM SEG objects: use --format dicom-seg", file=sys.stderr)
            return 2
        return _stow(args)
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        print(f"medal export: {out} is not empty; choose a new folder", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    summary = _from_server(args) if args.server else _embedded(args, out)
    if summary is None:
        return 2
    if args.server:
        with zipfile.ZipFile(io.BytesIO(summary.pop("_zip"))) as archive:
            archive.extractall(out)
    print(
        f"medal export: {summary['images']} images ({summary['human']} labelled by people, {summary['machine']} by "
        f"the model) as {args.format} in {out}; {summary['without_mask']} images have no mask yet"
    )
    for reason in summary.get("skipped", []):
        print(f"  skipped {reason}")
    return 0


def _from_server(args: argparse.Namespace) -> dict[str, Any] | None:
    url = f"{args.server.rstrip('/')}/annotation/v1/projects/{args.project}/export"
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    try:
        response = httpx.get(url, params={"format": args.format}, timeout=600, headers=headers)
    except httpx.HTTPError as exc:
        print(f"medal export: cannot reach {args.server}: {type(exc).__name__}", file=sys.stderr)
        return None
    if response.status_code != 200:
        message = response.json().get("error", {}).get("message", response.text[:200])
        print(f"medal export: {message}", file=sys.stderr)
        return None
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        summary: dict[str, Any] = json.loads(archive.read("export.json"))
    summary["_zip"] = response.content
    return summary


def _embedded(args: argparse.Namespace, out: Path) -> dict[str, Any] | None:
    from medal.platform import Platform
    from services.annotation import exports
    from services.annotation.errors import ProjectNotFound

    settings = load_settings()

    async def export() -> dict[str, Any]:
        platform = Platform.build(settings, ["annotation"])
        try:
            return vars(await exports.export_to(platform, args.project, args.format, exports.folder_sink(out)))
        finally:
            await platform.db.dispose()

    try:
        summary = asyncio.run(export())
    except ProjectNotFound:
        print(f"medal export: no project named {args.project}", file=sys.stderr)
        return None
    (out / "export.json").write_text(json.dumps(summary, indent=2))
    return summary


def _stow(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    body = {"url": args.stow, "reference": args.reference}
    api_key = args.api_key
    if args.server:
        server: Any = nullcontext(args.server.rstrip("/"))
    else:
        from medal.app import build_app
        from medal.local_server import serve_in_thread

        settings = load_settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.dicomweb_allowed_urls = [*settings.dicomweb_allowed_urls, args.stow]
        api_key = api_key or (settings.api_keys[0].get_secret_value() if settings.api_keys else None)
        server = serve_in_thread(build_app(settings, ["ingest", "annotation"], consume=False, migrate=True))
    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        with server as base:
            response = httpx.post(
                f"{base}/annotation/v1/projects/{args.project}/exports/stow", json=body, headers=headers, timeout=3600
            )
    except httpx.HTTPError as exc:
        print(f"medal export: cannot reach the server ({type(exc).__name__})", file=sys.stderr)
        return 2
    if response.status_code != 200:
        is_json = response.headers.get("content-type", "").startswith("application/json")
        error = response.json().get("error", {}) if is_json else {}
        print(f"medal export: refused (HTTP {response.status_code}): {error.get('message', '')}", file=sys.stderr)
        return 2
    report = response.json()
    for result in report["results"]:
        detail = f"  {result.get('code') or ''}: {result['reason']}" if result.get("reason") else ""
        print(f"{result['outcome']:<8} image {result['image_id']}{detail}")
    print(
        f"medal export: {report['sent']} SEG objects sent to {report['archive']} ({report['reference']} references), "
        f"{report['failed']} failed, {report['skipped']} skipped"
    )
    return 1 if report["failed"] else 0
