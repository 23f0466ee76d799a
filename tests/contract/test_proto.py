"""The bus contract: schemas in sync with code, envelopes that refuse junk without echoing it."""

from __future__ import annotations

import json
import re

import pytest

from medal.settings import SERVICE_NAMES
from proto import ALL_MESSAGES, ImageIngested, MalformedMessage, decode, encode, envelope_for, topology
from proto.envelope import registered_types
from proto.schema_gen import SCHEMA_DIR, schema_documents
from tests.factories import image_ingested


def test_checked_in_json_schemas_match_the_code() -> None:
    on_disk = {path.name: path.read_text() for path in SCHEMA_DIR.glob("*.json")}
    assert on_disk == schema_documents(), "run `python -m proto.schema_gen` and commit proto/schemas"


def test_message_types_are_versioned_and_named_by_kind() -> None:
    assert set(registered_types().values()) == set(ALL_MESSAGES)
    for message in ALL_MESSAGES:
        assert re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z-]+\.v\d+", message.TYPE), message.TYPE
        assert message.KIND in ("command", "event")
        if message.KIND == "event":
            assert message.__name__.endswith(("ed", "Completed")), message.__name__


def test_messages_carry_no_pixels_or_free_text() -> None:
    for message in ALL_MESSAGES:
        for name, field in message.model_fields.items():
            assert field.annotation is not bytes, f"{message.__name__}.{name} carries bytes"
            assert "name" not in name.lower() or name == "project", f"{message.__name__}.{name}"


def sample_event() -> ImageIngested:
    return image_ingested("p", 0xAB, width=2, height=2)


def test_round_trip() -> None:
    event = sample_event()
    envelope = envelope_for(event, source="ingest")
    decoded, payload = decode(encode(envelope))
    assert decoded == envelope and payload == event
    assert decoded.correlation_id == decoded.id


def test_decode_errors_name_fields_but_never_values() -> None:
    envelope = envelope_for(sample_event(), source="ingest")
    raw = json.loads(encode(envelope))
    raw["payload"]["modality"] = "CANARY^PATIENT^NAME^THAT^IS^TOO^LONG"
    with pytest.raises(MalformedMessage) as caught:
        decode(json.dumps(raw).encode())
    assert "modality" in str(caught.value) and "CANARY" not in str(caught.value)


def test_topology_routes_only_registered_types_to_known_queues() -> None:
    known = set(registered_types())
    for queue, types in topology.QUEUES.items():
        assert set(types) <= known, queue
    assert set(topology.SERVICE_QUEUE) <= set(SERVICE_NAMES)
    assert set(topology.SERVICE_QUEUE.values()) == set(topology.QUEUES)
    assert "ingest" not in topology.SERVICE_QUEUE  # ingest consumes nothing: no queue, no worker


def test_every_message_type_reaches_a_queue() -> None:
    routed = {message_type for types in topology.QUEUES.values() for message_type in types}
    assert routed == set(registered_types())


@pytest.mark.parametrize("service", sorted(topology.SERVICE_QUEUE))
def test_each_worker_handles_exactly_what_its_queue_receives(service: str) -> None:
    from medal.app import service_consumer

    consumer = service_consumer(service)
    assert consumer is not None and consumer.service == service
    assert consumer.message_types == set(topology.QUEUES[topology.SERVICE_QUEUE[service]])


def test_a_service_without_a_queue_has_no_consumer() -> None:
    from medal.app import service_consumer

    assert service_consumer("ingest") is None
