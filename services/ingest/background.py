"""Long-running tasks of an ingest process: the C-STORE SCP, when ``MEDAL_DIMSE_ENABLED``.

Embedded `medal up` starts them with the other services' tasks, and so does `medal serve ingest`
(which runs no consumers; medal/cli.py wraps its lifespan).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from medal.platform import Platform
from services.ingest.dimse import StoreScp


def background(platform: Platform) -> list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]]:
    return [StoreScp(platform).run] if platform.settings.dimse_enabled else []
