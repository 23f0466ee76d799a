"""`medal export --project NAME --format png|nifti|dicom-seg|coco --out DIR [--server URL]`."""

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
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--server", default=None, help="a running medal (default: embedded state in MEDAL_DATA_DIR)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
    try:
        response = httpx.get(url, params={"format": args.format}, timeout=600)
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
