"""Zip uploads: members read one at a time into memory under limits, never extracted by name.

Limits: member count, per-member and total declared size, compression ratio (zip bombs); nested
archives, encrypted members, symlinks, absolute or parent-relative names are refused per member.
Member names are inspected for safety only and never returned, stored or logged.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from services.ingest.parsing import RefusedInstance

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 20000
    max_member_bytes: int = 1024**3
    max_total_bytes: int = 16 * 1024**3
    max_ratio: float = 200.0


class ArchiveRefused(RefusedInstance):
    """The archive as a whole cannot be read (not a zip, over a limit): one refusal for all of it."""


@dataclass(frozen=True)
class Member:
    position: int
    data: bytes | None
    refusal: RefusedInstance | None


def is_zip(head: bytes) -> bool:
    return head[:4] in ZIP_MAGIC


def unsafe_name(name: str) -> bool:
    normalised = name.replace("\\", "/")
    parts = normalised.split("/")
    return (
        normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":") or ".." in parts or "\x00" in name
    )


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return (info.external_attr >> 16) & 0o170000 == 0o120000


def open_archive(file: IO[bytes], limits: ArchiveLimits) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ArchiveRefused("not_zip", "the body is not a readable zip archive") from None
    infos = [info for info in archive.infolist() if not info.is_dir()]
    if len(infos) > limits.max_members:
        raise ArchiveRefused("too_many_members", f"the archive has more than {limits.max_members} members")
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise ArchiveRefused("archive_too_large", f"members would expand to over {limits.max_total_bytes} bytes")
    packed = sum(info.compress_size for info in infos)
    if total > 1024**2 and total / max(packed, 1) > limits.max_ratio:
        raise ArchiveRefused("zip_bomb", f"compression ratio over {limits.max_ratio:.0f}")
    return archive, infos


def read_members(file: IO[bytes], limits: ArchiveLimits) -> Iterator[Member]:
    """Every file member in order: its bytes, or why it was refused."""
    archive, infos = open_archive(file, limits)
    with archive:
        for position, info in enumerate(infos):
            refusal = _member_refusal(info, limits)
            if refusal is not None:
                yield Member(position, None, refusal)
                continue
            try:
                with archive.open(info) as stream:
                    data = stream.read(info.file_size + 1)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, NotImplementedError, ValueError) as exc:
                yield Member(
                    position, None, RefusedInstance("corrupt_member", f"member cannot be read ({type(exc).__name__})")
                )
                continue
            if len(data) > info.file_size:
                yield Member(position, None, RefusedInstance("corrupt_member", "member is larger than declared"))
                continue
            if is_zip(data[:4]):
                yield Member(position, None, RefusedInstance("nested_archive", "archives inside archives are refused"))
                continue
            yield Member(position, data, None)


def _member_refusal(info: zipfile.ZipInfo, limits: ArchiveLimits) -> RefusedInstance | None:
    if unsafe_name(info.filename):
        return RefusedInstance("unsafe_name", "member name is absolute or climbs out of the archive")
    if _is_symlink(info):
        return RefusedInstance("unsafe_name", "member is a symbolic link")
    if info.flag_bits & 0x1:
        return RefusedInstance("encrypted_member", "encrypted members are refused")
    if info.file_size > limits.max_member_bytes:
        return RefusedInstance("member_too_large", f"member is over {limits.max_member_bytes} bytes")
    if info.file_size > 1024**2 and info.file_size / max(info.compress_size, 1) > limits.max_ratio:
        return RefusedInstance("zip_bomb", f"member compression ratio over {limits.max_ratio:.0f}")
    return None
