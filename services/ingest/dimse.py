"""DIMSE: ingest's C-STORE SCP, so a PACS can "send to medal" (pynetdicom).

medal answers as ``MEDAL_DIMSE_AE_TITLE`` on ``MEDAL_DIMSE_HOST:MEDAL_DIMSE_PORT``. Only the peers in
``MEDAL_DIMSE_PEERS`` (``AET@ADDRESS=PROJECT``) may associate: any other calling AE title, or a known
title from another address, is rejected at association time (A-ASSOCIATE-RJ, "calling AE title not
recognised"), and so is a called AE title other than medal's. The peer names the project its
studies go to. Each association that stores something is one ingest job, submitted by the calling
AE (``aet:ORTHANC``); each C-STORE is one instance through the same de-identification and outcomes
as an upload, answered Success (0x0000) or with the PS3.4 failure status of its refusal — a non-image
SOP class (an SR, a PDF) with 0x0122 "SOP class not supported", reported in the job like any refusal.
Every storage SOP class and transfer syntax is negotiated so that refusals are per instance.

pynetdicom runs each association on a thread of its own; the ingest work runs on the process's
event loop (``run_coroutine_threadsafe``), one instance at a time per association.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, evt
from pynetdicom.presentation import AllStoragePresentationContexts, build_context
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # generated at import

from medal.platform import Platform
from services.ingest.jobs import Submission
from services.ingest.stow import CANNOT_UNDERSTAND, FAILURE_REASON_BY_CODE, OUT_OF_RESOURCES

log = logging.getLogger("medal.ingest.dimse")
SUCCESS = 0x0000
INSTANCE_SECONDS = 600
REJECT_PERMANENT, SERVICE_USER, CALLING_AET_UNKNOWN = 0x01, 0x01, 0x03
T = TypeVar("T")


@dataclass(frozen=True)
class Peer:
    ae_title: str
    address: str
    project: str


def parse_peers(entries: list[str]) -> list[Peer]:
    """``AET@ADDRESS=PROJECT`` entries; raises ValueError naming the bad entry's position."""
    peers = []
    for position, entry in enumerate(entries, start=1):
        aet, _at, rest = entry.partition("@")
        address, _eq, project = rest.partition("=")
        if not (aet.strip() and address.strip() and project.strip()) or len(aet.strip()) > 16:
            raise ValueError(f"MEDAL_DIMSE_PEERS entry {position} is not AET@ADDRESS=PROJECT")
        peers.append(Peer(aet.strip(), address.strip(), project.strip()))
    return peers


class StoreScp:
    """The SCP of one process: :meth:`run` until its stop event is set (a platform background task)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.settings = platform.settings
        self.peers = parse_peers(self.settings.dimse_peers)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.submissions: dict[int, Submission] = {}
        self.accepted: dict[int, Peer] = {}

    def application_entity(self) -> AE:
        ae = AE(ae_title=self.settings.dimse_ae_title)
        ae.require_called_aet = True
        syntaxes = list(AllTransferSyntaxes)
        for context in [*AllStoragePresentationContexts, build_context(Verification)]:
            if context.abstract_syntax is not None:
                ae.add_supported_context(context.abstract_syntax, syntaxes)
        ae.maximum_associations = 8
        ae.network_timeout = 60
        ae.dimse_timeout = 120
        return ae

    async def run(self, stop: asyncio.Event) -> None:
        self.loop = asyncio.get_running_loop()
        ae = self.application_entity()
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._requested),
            (evt.EVT_C_STORE, self._store),
            (evt.EVT_RELEASED, self._ended),
            (evt.EVT_ABORTED, self._ended),
            (evt.EVT_CONN_CLOSE, self._ended),
        ]
        address = (self.settings.dimse_host, self.settings.dimse_port)
        server = await asyncio.to_thread(ae.start_server, address, block=False, evt_handlers=handlers)
        log.info("C-STORE SCP %s listening on %s:%d", self.settings.dimse_ae_title, *address)
        try:
            await stop.wait()
        finally:
            if server is not None:
                await asyncio.to_thread(server.shutdown)
            for key in list(self.submissions):
                await self._finish(key)
            log.info("C-STORE SCP stopped")

    def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.loop is None:
            raise RuntimeError("the SCP is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(INSTANCE_SECONDS)

    def peer_for(self, ae_title: str, address: str) -> Peer | None:
        return next((p for p in self.peers if p.ae_title == ae_title and p.address == address), None)

    def _requested(self, event: evt.Event) -> None:
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        calling = "" if primitive is None else str(primitive.calling_ae_title).strip()
        peer = self.peer_for(calling, assoc.requestor.address)
        if peer is None:
            log.warning("rejected an association from an unknown AE title or address")  # neither is quoted
            assoc.acse.send_reject(REJECT_PERMANENT, SERVICE_USER, CALLING_AET_UNKNOWN)
            assoc.kill()  # as pynetdicom's own rejections do: the DUL sends the A-ASSOCIATE-RJ, then stops
            return
        self.accepted[id(assoc)] = peer

    def _store(self, event: evt.Event) -> int:
        key = id(event.assoc)
        peer = self.accepted.get(key)
        if peer is None:
            return CANNOT_UNDERSTAND
        try:
            data = event.encoded_dataset(include_meta=True)
            return self._on_loop(self._add(key, peer, data))
        except Exception:
            log.exception("a C-STORE could not be ingested")
            return OUT_OF_RESOURCES

    async def _add(self, key: int, peer: Peer, data: bytes) -> int:
        submission = self.submissions.get(key)
        if submission is None:
            submission = Submission(self.platform, peer.project, "dimse", f"aet:{peer.ae_title}")
            await submission.start()
            self.submissions[key] = submission
        result = await submission.add(data)
        if result.outcome != "refused":
            return SUCCESS
        return FAILURE_REASON_BY_CODE.get(result.code or "", CANNOT_UNDERSTAND)

    def _ended(self, event: evt.Event) -> None:
        key = id(event.assoc)
        self.accepted.pop(key, None)
        if key in self.submissions and self.loop is not None and not self.loop.is_closed():
            try:
                self._on_loop(self._finish(key))
            except Exception:
                log.exception("an association's ingest job could not be finished")

    async def _finish(self, key: int) -> None:
        submission = self.submissions.pop(key, None)
        if submission is not None:
            await submission.finish()
