"""Bus messages the trainer worker consumes: parse, call one use case.

``round.completed.v1`` records the round and queues its M member commands; ``member.train.v1`` only
makes sure the member's job row exists and is acknowledged at once: the job loop
(services.trainer.background) trains it under a database lease, never under an unacked message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from medal.bus import Handler, PermanentFailure
from medal.platform import Platform
from proto import Envelope, Message
from proto.loop import RoundCompleted, TrainMember
from services.trainer import rounds

log = logging.getLogger("medal.trainer")


def handlers(platform: Platform) -> Mapping[str, Handler]:
    async def on_round_completed(envelope: Envelope, message: Message) -> None:
        if not isinstance(message, RoundCompleted):
            raise PermanentFailure(f"expected {RoundCompleted.TYPE}")
        try:
            await rounds.record_round(platform, envelope, message)
        except rounds.RoundRejected as exc:
            log.error("round %s of %s refused: %s", message.round_id, message.project, exc)
            raise PermanentFailure(str(exc)) from None

    async def on_train_member(envelope: Envelope, message: Message) -> None:
        if not isinstance(message, TrainMember):
            raise PermanentFailure(f"expected {TrainMember.TYPE}")
        try:
            created = await rounds.ensure_job(platform, envelope, message)
        except rounds.RoundRejected as exc:
            raise PermanentFailure(str(exc)) from None
        log.debug("member %d of round %s %s", message.member_index, message.round_id, "queued" if created else "known")

    return {RoundCompleted.TYPE: on_round_completed, TrainMember.TYPE: on_train_member}
