"""Long-running tasks of a trainer process besides its bus consumer: the member job loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from medal.platform import Platform
from services.trainer.runner import JobRunner


def background(platform: Platform) -> list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]]:
    """Started by `medal worker trainer` and embedded `medal up`; each runs until its event is set."""
    return [JobRunner(platform).run]
