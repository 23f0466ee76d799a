"""Which queue receives which message types: part of the contract, declared by every process.

Every process that talks to the bus declares this whole topology (idempotently) when it
connects, so a message published before its consumer first starts is kept, and a type that no
queue receives is refused at publish time instead of vanishing. Each work queue has a dead-letter
queue ``<queue>.dlq``. See docs/adr/0002-queue-topology.md.
"""

from __future__ import annotations

from proto.envelope import Message
from proto.loop import (
    AutoLabel,
    BatchSelected,
    ModelPromoted,
    ModelTrained,
    PredictionsStored,
    RoundCompleted,
    RoundFailed,
    ScorePoolShard,
)
from proto.messages import ImageIngested, IngestJobCompleted

EXCHANGE = "medal"
DEAD_LETTER_EXCHANGE = "medal.dlx"

# One work queue per service that consumes messages; its worker consumes it. Ingest consumes none.
ROUTES: dict[str, tuple[type[Message], ...]] = {
    "annotation.events": (
        ImageIngested,
        IngestJobCompleted,
        ModelTrained,
        ModelPromoted,
        RoundFailed,
        BatchSelected,
        PredictionsStored,
    ),
    "trainer.commands": (RoundCompleted,),
    "query.commands": (RoundCompleted, ModelTrained, ScorePoolShard),
    "inference.commands": (ImageIngested, ModelTrained, ModelPromoted, AutoLabel),
}

#: queue name → message types routed to it (built from the message classes' own TYPE constants).
QUEUES: dict[str, tuple[str, ...]] = {
    queue: tuple(message.TYPE for message in messages) for queue, messages in ROUTES.items()
}

SERVICE_QUEUE: dict[str, str] = {
    "annotation": "annotation.events",
    "trainer": "trainer.commands",
    "query": "query.commands",
    "inference": "inference.commands",
}


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def queues_for(message_type: str) -> list[str]:
    return [queue for queue, types in QUEUES.items() if message_type in types]
