"""The trainer worker's job loop: claim one member job at a time, train it off the event loop, record it.

While a member trains (in a thread, so the event loop keeps serving HTTP, the bus and heartbeats) a
heartbeat task extends the lease every ``trainer_heartbeat_seconds`` and writes the progress each
epoch reports (epoch, loss, validation Dice, ETA). A lost lease (another worker took the job after
this one stalled, or another member failed the round) stops training at the next epoch and
discards the result; bad training data fails the job and its round (announced as
``round.failed.v1``); a stop request (SIGTERM) stops it at the next epoch and gives the job back
to the queue without using up an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading

import torch
from sqlalchemy import select

from medal.db.schema import trainer as tables
from medal.model.device import ComputeDevice, available_cpus, select_device
from medal.model.weights import save_member
from medal.platform import Platform
from medal.storage import ObjectNotFound
from proto.loop import TrainingSpec
from services.trainer.completion import StoredMember, record_member
from services.trainer.jobs import (
    ClaimedJob,
    LeasePolicy,
    Progress,
    claim_next_job,
    fail_job,
    heartbeat,
    release_job,
)
from services.trainer.member import (
    BadTrainingData,
    LabelledTensors,
    MemberResult,
    load_labelled_set,
    train_one_member,
    warm_start_state,
)
from services.trainer.training import EpochReport

log = logging.getLogger("medal.trainer")

MAX_ATTEMPTS = 3
POLL_SECONDS = 1.0
MIN_PROGRESS_INTERVAL = 0.5


class LeaseLost(RuntimeError):
    """Another worker holds this job's lease now: stop and discard."""


class TrainingInterrupted(RuntimeError):
    """The worker is stopping: give the job back."""


class JobControl:
    """Shared between the training thread (progress, cancellation) and the event loop (heartbeats)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lease_lost = threading.Event()
        self.stopping = threading.Event()
        self.progress_changed = asyncio.Event()
        self._lock = threading.Lock()
        self._progress: Progress | None = None

    def progress(self) -> Progress | None:
        with self._lock:
            return self._progress

    def on_epoch(self, report: EpochReport, validation_dice: float) -> None:
        """Called in the training thread after every epoch; raises to stop training."""
        if self.lease_lost.is_set():
            raise LeaseLost("lease lost")
        if self.stopping.is_set():
            raise TrainingInterrupted("worker stopping")
        eta = report.seconds / report.epoch * (report.max_epochs - report.epoch)
        with self._lock:
            self._progress = Progress(report.epoch, report.max_epochs, report.train_loss, validation_dice, eta)
        self.loop.call_soon_threadsafe(self.progress_changed.set)


class JobRunner:
    """One job at a time, for as long as ``run`` is not stopped."""

    def __init__(self, platform: Platform, *, owner: str | None = None, compute: ComputeDevice | None = None) -> None:
        self.platform = platform
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        settings = platform.settings
        self.policy = LeasePolicy(ttl_seconds=settings.trainer_lease_seconds, max_attempts=MAX_ATTEMPTS)
        self.heartbeat_seconds = float(settings.trainer_heartbeat_seconds)
        self._compute = compute
        self._threads = settings.trainer_threads

    @property
    def compute(self) -> ComputeDevice:
        if self._compute is None:
            self._compute = select_device("auto", threads=self._threads)
        return self._compute

    async def run(self, stop: asyncio.Event) -> None:
        log.info("trainer job loop of %s started", self.owner)
        while not stop.is_set():
            try:
                job = await claim_next_job(self.platform, self.owner, self.policy)
            except Exception:
                log.exception("claiming a job failed; retrying")
                job = None
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=POLL_SECONDS)
                continue
            try:
                await self.run_job(job, stop)
            except Exception:
                log.exception("job %s failed unexpectedly", job.id)
        log.info("trainer job loop of %s stopped", self.owner)

    async def run_job(self, job: ClaimedJob, stop: asyncio.Event) -> str:
        """Train, store and record one claimed member; returns what happened (for logs and tests)."""
        log.info(
            "%s trains member %d of round %s (round attempt %d, claim %d)",
            self.owner,
            job.member_index,
            job.round_id,
            job.round_attempt,
            job.attempts,
        )
        db, store = self.platform.db, self.platform.store
        r = tables.rounds
        async with db.connect() as conn:
            row = (await conn.execute(select(r.c.training, r.c.labelled_set_key).where(r.c.id == job.round_id))).one()
        spec = TrainingSpec.model_validate_json(row.training)
        control = JobControl(asyncio.get_running_loop())
        keeper = asyncio.create_task(self._keep_lease(job, control))
        watcher = asyncio.create_task(self._watch_stop(stop, control))
        try:
            data = await asyncio.to_thread(load_labelled_set, store, row.labelled_set_key, spec)
            previous = await self.previous_member_weights(job) if spec.warm_start else None
            result = await asyncio.to_thread(self._train, data, spec, job.seed, control, previous)
            weights = await asyncio.to_thread(save_member, result.model, spec)
            stored = await asyncio.to_thread(store.put_content, "weights", weights, "pt", "application/octet-stream")
            recorded = await record_member(
                self.platform,
                job,
                StoredMember(
                    stored.key,
                    stored.sha256,
                    result.validation_dice,
                    result.epochs,
                    result.seconds,
                    loss=last.loss if (last := control.progress()) else None,
                ),
            )
        except LeaseLost:
            log.warning("member %d of round %s: lease lost, result discarded", job.member_index, job.round_id)
            return "lease-lost"
        except TrainingInterrupted:
            await release_job(self.platform, job, self.policy, "worker stopped", count_attempt=False)
            log.info("member %d of round %s given back (worker stopping)", job.member_index, job.round_id)
            return "released"
        except BadTrainingData as exc:
            await fail_job(self.platform, job, str(exc))
            log.error("member %d of round %s failed: %s", job.member_index, job.round_id, exc)
            return "failed"
        except Exception as exc:
            log.exception("member %d of round %s: training failed", job.member_index, job.round_id)
            await release_job(self.platform, job, self.policy, f"{type(exc).__name__}: {exc}", count_attempt=True)
            return "released"
        finally:
            keeper.cancel()
            watcher.cancel()
        if not recorded.accepted:
            log.warning("member %d of round %s: lease lost before recording", job.member_index, job.round_id)
            return "lease-lost"
        log.info(
            "member %d of round %s trained: %d epochs, dice %.3f, %.1f s",
            job.member_index,
            job.round_id,
            result.epochs,
            result.validation_dice,
            result.seconds,
        )
        return "done"

    def _train(
        self, data: LabelledTensors, spec: TrainingSpec, seed: int, control: JobControl, previous: bytes | None
    ) -> MemberResult:
        """In the training thread: torch's CPU thread count is per thread, so set it here."""
        compute = self.compute
        if not compute.is_cuda:
            torch.set_num_threads(self._threads or available_cpus())
        initial = warm_start_state(previous, spec, on_gpu=compute.is_cuda) if previous is not None else None
        if previous is not None and initial is None:
            log.warning("warm start: the previous member does not fit this spec; training from scratch")
        return train_one_member(data, spec, seed, compute, control.on_epoch, initial_state=initial)

    async def previous_member_weights(self, job: ClaimedJob) -> bytes | None:
        """Weights of the same member of the project's newest model version of another round (warm start)."""
        v = tables.model_versions
        async with self.platform.db.connect() as conn:
            members = (
                await conn.execute(
                    select(v.c.members)
                    .where(v.c.project == job.project, v.c.round_id != job.round_id)
                    .order_by(v.c.version.desc())
                    .limit(1)
                )
            ).scalar()
        if members is None:
            return None
        listed = json.loads(members)
        key = str(listed[job.member_index % len(listed)]["weights_key"])
        try:
            return await asyncio.to_thread(self.platform.store.get, key)
        except ObjectNotFound:
            log.warning("warm start: weights %s are gone; training from scratch", key)
            return None

    async def _watch_stop(self, stop: asyncio.Event, control: JobControl) -> None:
        await stop.wait()
        control.stopping.set()

    async def _keep_lease(self, job: ClaimedJob, control: JobControl) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(control.progress_changed.wait(), timeout=self.heartbeat_seconds)
            control.progress_changed.clear()
            try:
                held = await heartbeat(self.platform, job, self.policy, control.progress())
            except Exception as exc:
                log.warning("heartbeat of job %s failed (%s); retrying", job.id, type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            if not held:
                control.lease_lost.set()
                return
            await asyncio.sleep(min(MIN_PROGRESS_INTERVAL, self.heartbeat_seconds))
