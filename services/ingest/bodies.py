"""Request bodies as streams: spooled to a temporary file under a size limit, never held whole."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import IO

from fastapi import Request

from medal.errors import ApiError

SPOOL_IN_MEMORY = 8 * 1024**2


def declared_too_large(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload-too-large", f"body of {declared} bytes is over the limit of {limit}")


async def limited_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    declared_too_large(request, limit)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload-too-large", f"body is over the limit of {limit} bytes")
        yield chunk


async def spool_body(request: Request, limit: int) -> IO[bytes]:
    """The body in a temporary file (in memory while small), positioned at its start."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - caller closes
    try:
        async for chunk in limited_chunks(request, limit):
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


async def read_limited(request: Request, limit: int) -> bytes:
    chunks = [chunk async for chunk in limited_chunks(request, limit)]
    return b"".join(chunks)
