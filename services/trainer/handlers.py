"""Bus messages the trainer worker consumes: ``round.completed.v1``, one unit of work per delivery.

The round and its M member jobs are recorded in the message's transaction (services.trainer.rounds);
the job loop (services.trainer.background) trains them under database leases, never under an
unacked message. A round that cannot be trained is recorded as failed and announced, not dead-lettered.
"""

from __future__ import annotations

from medal.unit_of_work import Consumer, MessageContext
from proto.loop import RoundCompleted
from services.trainer import rounds

consumer: Consumer[None] = Consumer("trainer")


@consumer.handles(RoundCompleted)
async def on_round_completed(ctx: MessageContext[None], event: RoundCompleted) -> None:
    problem = await rounds.inspect(ctx.platform, event)  # reads storage: before the transaction
    async with ctx.unit_of_work() as uow:
        await rounds.record_round(uow, event, problem)
