"""Bus messages the annotation service consumes: parse, call one use case."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from medal.bus import Handler, PermanentFailure
from medal.platform import Platform
from proto import Envelope, ImageIngested, Message
from services.annotation import service

log = logging.getLogger("medal.annotation")


def handlers(platform: Platform) -> Mapping[str, Handler]:
    async def on_image_ingested(envelope: Envelope, message: Message) -> None:
        if not isinstance(message, ImageIngested):
            raise PermanentFailure(f"expected {ImageIngested.TYPE}")
        created = await service.record_ingested_image(platform, envelope, message)
        log.debug("image %s %s", message.image_id, "offered" if created else "already known")

    return {ImageIngested.TYPE: on_image_ingested}
