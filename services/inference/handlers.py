"""Bus messages the inference worker consumes (its commands arrive with the loop issue)."""

from collections.abc import Mapping

from medal.bus import Handler
from medal.platform import Platform


def handlers(platform: Platform) -> Mapping[str, Handler]:
    return {}
