"""The ingest worker's message handlers (none yet: uploads arrive over HTTP)."""

from collections.abc import Mapping

from medal.bus import Handler
from medal.platform import Platform


def handlers(platform: Platform) -> Mapping[str, Handler]:
    return {}
