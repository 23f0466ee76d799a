"""`medal ingest PATH... --project NAME [--server URL]`: files, folders and zips into a project.

Without ``--server`` the platform starts in this process on ``MEDAL_DATA_DIR`` (embedded) and the
files go over local HTTP, exactly as to a remote server. Zips are opened here (with the server's
limits) so that no file, folder or member name ever leaves this machine: every part is sent as
``part-N.dcm``. Names are printed to this terminal only, next to each outcome. Exit status 1 when
anything was refused, 2 when the server cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from services.ingest.archive import ArchiveLimits, ArchiveRefused, is_zip, read_members

MAX_BATCH_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class Item:
    """One thing to send: a file on disk, a zip member read already, or a local refusal."""

    label: str
    path: Path | None = None
    data: bytes | None = None
    refusal: tuple[str, str] | None = None

    def load(self) -> bytes | None:
        return self.path.read_bytes() if self.path is not None else self.data


def register(commands: Any) -> None:
    parser = commands.add_parser("ingest", help="ingest DICOM files, folders and zips into a project")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="DICOM files, folders or zip archives")
    parser.add_argument("--project", required=True, help="project slug (a-z, 0-9, -)")
    parser.add_argument("--server", default=None, help="base URL of a running platform (default: embedded)")
    parser.add_argument("--api-key", default=None, help="API key for the server (X-API-Key)")
    parser.add_argument("--batch", type=int, default=32, help="files per request (default 32)")
    parser.set_defaults(func=run)


def collect(paths: list[Path]) -> Iterator[Item]:
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                yield from _file_items(file)
        elif path.is_file():
            yield from _file_items(path)
        else:
            yield Item(str(path), refusal=("missing", "no such file or folder"))


def _file_items(path: Path) -> Iterator[Item]:
    with path.open("rb") as handle:
        head = handle.read(4)
    if not is_zip(head):
        yield Item(str(path), path=path)
        return
    with path.open("rb") as handle:
        try:
            for member in read_members(handle, ArchiveLimits()):
                label = f"{path} #{member.position + 1}"
                refusal = (member.refusal.code, member.refusal.message) if member.refusal else None
                yield Item(label, data=member.data, refusal=refusal)
        except ArchiveRefused as exc:
            yield Item(str(path), refusal=(exc.code, exc.message))


def count_items(paths: list[Path]) -> int:
    """For the progress bar: files, with zips counted by their members."""
    total = 0
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                with file.open("rb") as handle:
                    zipped = is_zip(handle.read(4))
                total += len([i for i in zipfile.ZipFile(file).infolist() if not i.is_dir()]) if zipped else 1
            except (OSError, zipfile.BadZipFile):
                total += 1
    return total


def batches(items: Iterator[Item], size: int) -> Iterator[list[tuple[Item, bytes | None]]]:
    batch: list[tuple[Item, bytes | None]] = []
    total = 0
    for item in items:
        data = item.load()
        batch.append((item, data))
        total += len(data or b"")
        if len(batch) >= size or total >= MAX_BATCH_BYTES:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def send(client: httpx.Client, base: str, project: str, batch: list[tuple[Item, bytes | None]]) -> list[dict[str, Any]]:
    sendable = [(index, data) for index, (_item, data) in enumerate(batch) if data is not None]
    results: list[dict[str, Any]] = [
        {"outcome": "refused", "code": code, "reason": reason}
        for item, _data in batch
        for code, reason in [item.refusal or ("empty", "nothing to send")]
    ]
    if not sendable:
        return results
    files = [("files", (f"part-{n}.dcm", data, "application/octet-stream")) for n, (_i, data) in enumerate(sendable)]
    response = client.post(f"{base}/ingest/v1/projects/{project}/instances", files=files)
    if response.status_code != 200:
        is_json = response.headers.get("content-type", "").startswith("application/json")
        error = response.json().get("error", {}) if is_json else {}
        reason = f"HTTP {response.status_code}: {error.get('message', response.text[:200])}"
        for index, _data in sendable:
            results[index] = {"outcome": "refused", "code": error.get("code", "http"), "reason": reason}
        return results
    body = response.json()
    for (index, _data), result in zip(sendable, body["results"], strict=True):
        results[index] = {**result, "job": body["job"]["id"]}
    return results


def run(args: argparse.Namespace) -> int:
    server: AbstractContextManager[str]
    api_key = args.api_key
    if args.server:
        server = nullcontext(args.server.rstrip("/"))
    else:
        from medal.app import build_app
        from medal.local_server import serve_in_thread
        from medal.preflight import load_settings

        settings = load_settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if api_key is None and settings.api_keys:
            api_key = settings.api_keys[0].get_secret_value()
        server = serve_in_thread(build_app(settings, ["ingest", "annotation"], consume=True, migrate=True))
    headers = {"X-API-Key": api_key} if api_key else {}
    counts: Counter[str] = Counter()
    jobs: set[str] = set()
    total = count_items(args.paths)
    try:
        with (
            server as base,
            httpx.Client(timeout=600, headers=headers) as client,
            tqdm(total=total, unit="file", file=sys.stderr, disable=None) as progress,
        ):
            for batch in batches(collect(args.paths), max(1, args.batch)):
                for (item, _data), result in zip(batch, send(client, base, args.project, batch), strict=True):
                    counts[result["outcome"]] += 1
                    jobs.update([result["job"]] if "job" in result else [])
                    reason = result.get("reason") if result["outcome"] != "accepted" else None
                    detail = f"  {result.get('code') or ''}: {reason}" if reason else ""
                    progress.write(f"{result['outcome']:<11} {item.label}{detail}")
                    progress.update(1)
    except httpx.HTTPError as exc:
        print(f"medal ingest: cannot reach the server ({type(exc).__name__})", file=sys.stderr)
        return 2
    print(
        f"medal ingest: {sum(counts.values())} files: {counts['accepted']} accepted, "
        f"{counts['quarantined']} quarantined, {counts['duplicate']} duplicates, {counts['refused']} refused; "
        f"jobs: {', '.join(sorted(jobs)) or 'none'}"
    )
    return 1 if counts["refused"] else 0
