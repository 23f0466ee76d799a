"""Trainer routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from medal.compute import compute_info

router = APIRouter(prefix="/v1", tags=["trainer"])


@router.get("/info", summary="Version and the compute this worker pool runs on")
async def info() -> dict[str, Any]:
    return {"service": "trainer", "compute": await run_in_threadpool(compute_info)}
