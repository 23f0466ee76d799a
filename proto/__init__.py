"""medal's bus contract: the envelope and every message type. Imports nothing from services."""

from proto.envelope import Envelope, MalformedMessage, Message, decode, encode, envelope_for
from proto.messages import ALL_MESSAGES, ImageIngested, IngestJobCompleted, MemberTrained, TrainMember

__all__ = [
    "ALL_MESSAGES",
    "Envelope",
    "ImageIngested",
    "IngestJobCompleted",
    "MalformedMessage",
    "MemberTrained",
    "Message",
    "TrainMember",
    "decode",
    "encode",
    "envelope_for",
]
