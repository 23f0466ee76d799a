"""The unit of work: one transaction of a service's rows and the messages they cause.

Every bus handler and every HTTP use case that emits messages goes through it, so the ritual is
written once: open the transaction, (for a consumed message) claim its id in the inbox, hand the
connection to the use case, record what it emits in the outbox, commit, and wake the outbox relay
after the commit. Nothing is published before the commit; a message handled twice changes nothing.

- HTTP use case: ``async with platform.unit_of_work("trainer") as uow: ... await uow.emit(event)``.
- Bus handler: registered on a :class:`Consumer` with its message type; it receives a
  :class:`MessageContext` whose ``unit_of_work()`` also claims the message in the inbox and raises
  :class:`AlreadyHandled` (caught by the consumer, the delivery is acknowledged) for a repeat.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from medal.bus.base import Handler, PermanentFailure
from medal.db.messaging import add_to_outbox, claim_message
from medal.domain_errors import DomainError
from proto.envelope import Envelope, Message, envelope_for

if TYPE_CHECKING:
    from medal.platform import Platform

log = logging.getLogger("medal.unit_of_work")

M = TypeVar("M", bound=Message)
R = TypeVar("R")


class AlreadyHandled(Exception):
    """The consumed message's id is in the inbox already: its effects are committed, acknowledge it."""


class UnitOfWork:
    """The open transaction (``conn``) and the messages queued to leave after it commits."""

    def __init__(self, conn: AsyncConnection, source: str, correlation_id: uuid.UUID | None = None) -> None:
        self.conn = conn
        self.source = source
        self.correlation_id = correlation_id
        self.emitted = 0

    async def emit(
        self, message: Message, *, message_id: uuid.UUID | None = None, correlation_id: uuid.UUID | None = None
    ) -> Envelope:
        """Queue ``message`` in the outbox of this transaction (published only once it commits).

        ``message_id`` derived from a business key makes a re-emission harmless (the outbox keeps one).
        The correlation id defaults to the consumed message's, so one user action can be followed.
        """
        envelope = envelope_for(
            message,
            source=self.source,
            correlation_id=correlation_id or self.correlation_id,
            message_id=message_id,
        )
        await add_to_outbox(self.conn, envelope)
        self.emitted += 1
        return envelope


@asynccontextmanager
async def open_unit_of_work(
    platform: Platform,
    source: str,
    *,
    correlation_id: uuid.UUID | None = None,
    inbox: tuple[str, Envelope] | None = None,
) -> AsyncIterator[UnitOfWork]:
    """Begin, (claim ``inbox`` = (consumer, envelope)), yield, commit, then wake the relay."""
    async with platform.db.begin() as conn:
        if inbox is not None:
            consumer, envelope = inbox
            if not await claim_message(conn, consumer, str(envelope.id)):
                raise AlreadyHandled(str(envelope.id))
        uow = UnitOfWork(conn, source, correlation_id)
        yield uow
    if uow.emitted:
        platform.relay.notify()


@dataclass(frozen=True)
class MessageContext(Generic[R]):
    """What a bus handler gets besides its message: the platform, the envelope, the service's resources."""

    platform: Platform
    envelope: Envelope
    consumer: str
    resources: R

    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """The handler's transaction: claims the message in the inbox first (:class:`AlreadyHandled` if done)."""
        return open_unit_of_work(
            self.platform,
            self.consumer,
            correlation_id=self.envelope.correlation_id,
            inbox=(self.consumer, self.envelope),
        )


HandlerFunction = Callable[[MessageContext[R], M], Awaitable[None]]


class Consumer(Generic[R]):
    """A service's bus handlers, each registered with the message type it handles.

    ``resources`` builds, once per process, what the handlers share (e.g. a cache of loaded models).
    """

    def __init__(self, service: str, resources: Callable[[Platform], R] | None = None) -> None:
        self.service = service
        self._resources = resources
        self._handlers: dict[str, Callable[[MessageContext[R], Any], Awaitable[None]]] = {}

    def handles(self, message_type: type[M]) -> Callable[[HandlerFunction[R, M]], HandlerFunction[R, M]]:
        def register(function: HandlerFunction[R, M]) -> HandlerFunction[R, M]:
            if message_type.TYPE in self._handlers:
                raise ValueError(f"{self.service} handles {message_type.TYPE} twice")
            self._handlers[message_type.TYPE] = function
            return function

        return register

    @property
    def message_types(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def bind(self, platform: Platform) -> Mapping[str, Handler]:
        """The bus handlers of this process: each maps domain refusals to dead-letter or retry."""
        resources = cast(R, self._resources(platform) if self._resources is not None else None)
        return {
            message_type: self._bound(platform, resources, function)
            for message_type, function in self._handlers.items()
        }

    def _bound(
        self, platform: Platform, resources: R, function: Callable[[MessageContext[R], Any], Awaitable[None]]
    ) -> Handler:
        async def handle(envelope: Envelope, message: Message) -> None:
            # decode() validated the payload with the class registered for envelope.type, which is the
            # type this function was registered for: no isinstance guard is needed.
            context = MessageContext(platform, envelope, self.service, resources)
            try:
                await function(context, message)
            except AlreadyHandled:
                log.debug("%s: message %s was handled already", self.service, envelope.id)
            except DomainError as exc:
                if exc.permanent:
                    raise PermanentFailure(f"{exc.code}: {exc.message}") from None
                raise

        return handle
