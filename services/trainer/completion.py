"""A member's result, recorded: the fenced finish of its job and, for the round's last member, the model version.

One transaction: lock the round, finish the job only if this worker still holds its lease, and when
all M jobs of the round's current attempt are done register exactly one model version
(``UNIQUE(round_id)``) and queue ``model.trained.v2`` (and ``model.promoted.v1``: a new version
becomes current unless a person chose the current one).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from medal.db.schema import trainer as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from medal.unit_of_work import UnitOfWork
from proto.loop import ModelTrained, TrainingSpec
from services.trainer import registry
from services.trainer.jobs import ClaimedJob, StoredMember, finish_job, lock_round
from services.trainer.schemas import MemberInfo
from services.trainer.states import DONE, ROUND_TRAINED, SOURCE

__all__ = ["Recorded", "StoredMember", "record_member"]

log = logging.getLogger("medal.trainer")

NAMESPACE = uuid.UUID("a3b5d7e9-1c2e-4f60-8a9b-0d1e2f3a4b5c")


@dataclass(frozen=True)
class Recorded:
    """``accepted``: this worker still held the lease; ``version``: the model version it completed, if any."""

    accepted: bool
    version: int | None = None


async def record_member(platform: Platform, job: ClaimedJob, member: StoredMember, *, tries: int = 3) -> Recorded:
    """Finish the job and maybe register the round's model version; retried on a version-number race."""
    for attempt in range(1, tries + 1):
        try:
            return await _record_once(platform, job, member)
        except IntegrityError:
            if attempt == tries:
                raise
            log.info("model version number of %s taken concurrently; retrying", job.project)
    raise AssertionError("unreachable")


async def _record_once(platform: Platform, job: ClaimedJob, member: StoredMember) -> Recorded:
    r = tables.rounds
    now = utcnow()
    async with platform.unit_of_work(SOURCE) as uow:
        if not await lock_round(uow.conn, job, now):
            return Recorded(accepted=False)
        if not await finish_job(uow.conn, job, member, now):
            return Recorded(accepted=False)
        round_row = (await uow.conn.execute(select(r).where(r.c.id == job.round_id))).one()
        version = await _register_when_complete(uow, round_row, now)
    if version is not None:
        log.info("round %s of %s: model version %d registered", round_row.round_number, round_row.project, version)
    return Recorded(accepted=True, version=version)


async def _register_when_complete(uow: UnitOfWork, round_row: Any, now: datetime) -> int | None:
    """The round's model version once every member of its current attempt is done (None before)."""
    j, r, v = tables.jobs, tables.rounds, tables.model_versions
    done = (
        await uow.conn.execute(
            select(j)
            .where(j.c.round_id == round_row.id, j.c.round_attempt == round_row.attempt, j.c.state == DONE)
            .order_by(j.c.member_index)
        )
    ).all()
    if len(done) < round_row.committee_size:
        return None
    already = (await uow.conn.execute(select(v.c.version).where(v.c.round_id == round_row.id))).scalar()
    if already is not None:
        return int(already)
    version = await registry.next_version_number(uow.conn, round_row.project)
    version_id = registry.model_version_id(round_row.id)
    members = [
        MemberInfo(
            member_index=row.member_index,
            weights_key=row.weights_key,
            weights_sha256=row.weights_sha256,
            validation_dice=float(row.validation_dice),
            epochs=int(row.epoch or 0),
            train_seconds=float(row.train_seconds or 0.0),
            attempts=int(row.attempts),
        )
        for row in done
    ]
    dice = sum(m.validation_dice for m in members) / len(members)
    await uow.conn.execute(
        v.insert().values(
            id=version_id,
            project=round_row.project,
            version=version,
            round_id=round_row.id,
            round_number=round_row.round_number,
            labels=round_row.labels,
            labelled_set_key=round_row.labelled_set_key,
            members=json.dumps([m.model_dump() for m in members]),
            validation_dice=dice,
            training=round_row.training,
            status=registry.CANDIDATE,
            created_at=now,
        )
    )
    await uow.conn.execute(update(r).where(r.c.id == round_row.id).values(state=ROUND_TRAINED))
    correlation = uuid.UUID(round_row.correlation_id)
    trained = ModelTrained(
        project=round_row.project,
        round_id=uuid.UUID(round_row.id),
        model_version_id=uuid.UUID(version_id),
        version=version,
        member_keys=[m.weights_key for m in members],
        validation_dice=min(1.0, max(0.0, dice)),
        labels=round_row.labels,
        training=TrainingSpec.model_validate_json(round_row.training),
    )
    message_id = uuid.uuid5(NAMESPACE, f"model.trained:{round_row.id}")
    await uow.emit(trained, message_id=message_id, correlation_id=correlation)
    if not await registry.pinned_by_person(uow.conn, round_row.project):
        await registry.promote_in(uow, round_row.project, version, correlation_id=correlation)
    return version
