"""medal's bus contract: the envelope and every message type. Imports nothing from services."""

from proto.envelope import Envelope, MalformedMessage, Message, decode, encode, envelope_for, registered_types
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

# Every message type, in a stable order (schemas are generated from this).
ALL_MESSAGES = tuple(sorted(registered_types().values(), key=lambda message: message.TYPE))

__all__ = [
    "ALL_MESSAGES",
    "AutoLabel",
    "BatchSelected",
    "Envelope",
    "ImageIngested",
    "IngestJobCompleted",
    "MalformedMessage",
    "Message",
    "ModelPromoted",
    "ModelTrained",
    "PredictionsStored",
    "RoundCompleted",
    "RoundFailed",
    "ScorePoolShard",
    "decode",
    "encode",
    "envelope_for",
]
