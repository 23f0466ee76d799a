"""Use cases of the trainer's commands: a completed round becomes M member jobs and M train commands.

Both are idempotent: the round id and (round, member) decide the row ids and the message ids, and
the inbox records each processed message in the same transaction as its effects.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlalchemy import select

from medal.db.engine import insert_ignore
from medal.db.messaging import add_to_outbox, claim_message
from medal.db.schema import trainer as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from proto import Envelope
from proto.envelope import envelope_for
from proto.loop import RoundCompleted, TrainMember
from services.trainer.committee import member_seed
from services.trainer.jobs import QUEUED, ROUND_TRAINING
from services.trainer.member import BadTrainingData, read_manifest

log = logging.getLogger("medal.trainer")

CONSUMER = "trainer"
SOURCE = "trainer"
NAMESPACE = uuid.UUID("6f1d2c8e-4b7a-4e5f-9c3d-2a1b0e9f8d75")


class RoundRejected(ValueError):
    """The round cannot be trained; the text says why (it is dead-lettered, nothing is recorded)."""


def job_id(round_id: uuid.UUID | str, member_index: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"job:{round_id}:{member_index}"))


def train_command_id(round_id: uuid.UUID | str, member_index: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"member.train:{round_id}:{member_index}")


async def _check_labelled_set(platform: Platform, event: RoundCompleted) -> None:
    try:
        manifest = await asyncio.to_thread(read_manifest, platform.store, event.labelled_set_key)
    except BadTrainingData as exc:
        raise RoundRejected(str(exc)) from None
    if not manifest.items:
        raise RoundRejected(f"round {event.round_id} of {event.project} has no labelled images to train on")
    if manifest.project != event.project or manifest.round_id != event.round_id:
        raise RoundRejected(f"labelled set {event.labelled_set_key} belongs to another project or round")
    if manifest.num_classes != event.training.num_classes:
        raise RoundRejected(
            f"labelled set has {manifest.num_classes} classes, the training spec {event.training.num_classes}"
        )


async def record_round(platform: Platform, envelope: Envelope, event: RoundCompleted) -> bool:
    """Record the round, its M jobs and M member.train.v1 commands in one transaction.

    False for a repeat (same message, or another message about a round already recorded).
    Raises :class:`RoundRejected` when the labelled set is missing, unreadable or empty.
    """
    r, j = tables.rounds, tables.jobs
    async with platform.db.connect() as conn:
        known = (await conn.execute(select(r.c.id).where(r.c.id == str(event.round_id)))).scalar()
    if known is None:
        await _check_labelled_set(platform, event)
    now = utcnow()
    async with platform.db.begin() as conn:
        if not await claim_message(conn, CONSUMER, str(envelope.id)):
            return False
        created = await insert_ignore(
            conn,
            r,
            {
                "id": str(event.round_id),
                "project": event.project,
                "round_number": event.round_number,
                "labels": event.labels,
                "labelled_set_key": event.labelled_set_key,
                "pool_key": event.pool_key,
                "committee_size": event.committee_size,
                "training": event.training.model_dump_json(),
                "selection": event.selection.model_dump_json(),
                "seed": event.seed,
                "correlation_id": str(envelope.correlation_id),
                "state": ROUND_TRAINING,
                "created_at": now,
                "updated_at": now,
            },
            ["id"],
        )
        if not created:
            return False
        for member in range(event.committee_size):
            await insert_ignore(conn, j, _job_row(event.round_id, event.project, member, event, now), ["id"])
            command = TrainMember(
                project=event.project,
                round_id=event.round_id,
                member_index=member,
                committee_size=event.committee_size,
                labelled_set_key=event.labelled_set_key,
                training=event.training,
                seed=event.seed,
            )
            await add_to_outbox(
                conn,
                envelope_for(
                    command,
                    source=SOURCE,
                    correlation_id=envelope.correlation_id,
                    message_id=train_command_id(event.round_id, member),
                ),
            )
    platform.relay.notify()
    log.info("round %s of %s: %d member jobs queued", event.round_number, event.project, event.committee_size)
    return True


def _job_row(
    round_id: uuid.UUID, project: str, member: int, spec: RoundCompleted | TrainMember, now: object
) -> dict[str, object]:
    return {
        "id": job_id(round_id, member),
        "round_id": str(round_id),
        "project": project,
        "member_index": member,
        "seed": member_seed(spec.seed, member),
        "state": QUEUED,
        "attempts": 0,
        "max_epochs": spec.training.max_epochs,
        "created_at": now,
    }


async def ensure_job(platform: Platform, envelope: Envelope, command: TrainMember) -> bool:
    """Make sure the member's job row exists (it normally does); True when it had to be created.

    Raises :class:`RoundRejected` for a command about a round the trainer never recorded, or one that
    disagrees with the recorded round.
    """
    r = tables.rounds
    async with platform.db.begin() as conn:
        round_row = (await conn.execute(select(r).where(r.c.id == str(command.round_id)))).first()
        if round_row is None:
            raise RoundRejected(f"round {command.round_id} is unknown to the trainer (no round.completed.v1)")
        if (
            round_row.committee_size != command.committee_size
            or command.member_index >= round_row.committee_size
            or round_row.labelled_set_key != command.labelled_set_key
            or round_row.project != command.project
        ):
            raise RoundRejected(f"member {command.member_index} does not match round {command.round_id}")
        await claim_message(conn, CONSUMER, str(envelope.id))
        return await insert_ignore(
            conn,
            tables.jobs,
            _job_row(command.round_id, command.project, command.member_index, command, utcnow()),
            ["id"],
        )
