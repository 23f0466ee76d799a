"""Which queue receives which message types: part of the contract, declared by every process.

Every process that talks to the bus declares this whole topology (idempotently) when it
connects, so a message published before its consumer first starts is kept, and a type that no
queue receives is refused at publish time instead of vanishing. Each work queue has a dead-letter
queue ``<queue>.dlq``. See docs/adr/0002-queue-topology.md.
"""

from __future__ import annotations

from proto.loop import RoundCompleted, TrainMember
from proto.messages import ImageIngested, IngestJobCompleted

EXCHANGE = "medal"
DEAD_LETTER_EXCHANGE = "medal.dlx"

# queue name → message types routed to it. One work queue per service; its worker consumes it.
QUEUES: dict[str, tuple[str, ...]] = {
    "ingest.commands": (),
    "annotation.events": (
        ImageIngested.TYPE,
        IngestJobCompleted.TYPE,
        "model.trained.v1",
        "model.promoted.v1",
        "batch.selected.v1",
        "predictions.stored.v1",
    ),
    "trainer.commands": (RoundCompleted.TYPE, TrainMember.TYPE),
    "query.commands": ("model.trained.v1", "pool-shard.score.v1"),
    "inference.commands": ("image.ingested.v1", "model.trained.v1", "model.promoted.v1", "autolabel.run.v1"),
}

SERVICE_QUEUE: dict[str, str] = {
    "ingest": "ingest.commands",
    "annotation": "annotation.events",
    "trainer": "trainer.commands",
    "query": "query.commands",
    "inference": "inference.commands",
}


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def queues_for(message_type: str) -> list[str]:
    return [queue for queue, types in QUEUES.items() if message_type in types]
