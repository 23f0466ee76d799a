"""Who is calling: kept for every service's imports; the implementation is :mod:`medal.access`."""

from __future__ import annotations

from medal.access.caller import LOCAL_USER, Caller
from medal.access.identify import identify_caller

__all__ = ["LOCAL_USER", "Caller", "identify_caller"]
