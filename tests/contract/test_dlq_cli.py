"""`medal dlq list|replay` against the real RabbitMQ: what an operator sees and what a replay does."""

from __future__ import annotations

import pytest

from medal.bus import PermanentFailure
from medal.bus.rabbitmq import RabbitBus
from medal.cli import main
from proto import Envelope, ImageIngested, Message, topology
from tests.contract.bus_helpers import FAST, QUEUE, consuming, image_event, wait_until


@pytest.fixture
def broker_env(monkeypatch: pytest.MonkeyPatch, rabbitmq_server: str, bus_namespace: str) -> RabbitBus:
    monkeypatch.setenv("MEDAL_BROKER_URL", rabbitmq_server)
    monkeypatch.setenv("MEDAL_BUS_NAMESPACE", bus_namespace)
    return RabbitBus(rabbitmq_server, namespace=bus_namespace, retry=FAST)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(["dlq", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def test_dlq_list_shows_each_letter_without_its_body_and_replay_hands_it_back(
    broker_env: RabbitBus, capsys: pytest.CaptureFixture[str]
) -> None:
    bus = broker_env
    healthy: list[str] = []
    events = [image_event(n) for n in (1, 2)]

    async def handler(envelope: Envelope, message: Message) -> None:
        if not healthy:
            raise PermanentFailure("project-not-found: no project 'bus-test'")
        healthy.append(str(envelope.id))

    for envelope in events:
        bus.publish(envelope)
    with consuming(bus, {ImageIngested.TYPE: handler}):
        wait_until(lambda: len(bus.dead_letters(QUEUE)) == 2)
    code, out, _err = run_cli(capsys, "list")
    assert code == 0
    assert out[0].split()[:3] == ["queue", "message", "id"]
    assert len(out) == 3
    for envelope, line in zip(events, out[1:], strict=True):
        queue, message_id, message_type, tries, when, *reason = line.split()
        assert (queue, message_id, message_type, tries) == (QUEUE, str(envelope.id), ImageIngested.TYPE, "1")
        assert when.endswith("Z") and " ".join(reason) == "permanent failure: project-not-found: no project 'bus-test'"
    text = "\n".join(out)
    assert "display/" not in text and "payload" not in text  # never the body
    code, out, _err = run_cli(capsys, "list", "--queue", "trainer.commands")
    assert (code, out) == (0, ["no dead letters in trainer.commands"])

    healthy.append("fixed")
    code, out, _err = run_cli(capsys, "replay", "--queue", QUEUE, "--id", str(events[0].id))
    assert code == 0 and out == [f"replayed {events[0].id} ({ImageIngested.TYPE}) to {QUEUE}"]
    with consuming(bus, {ImageIngested.TYPE: handler}):
        wait_until(lambda: str(events[0].id) in healthy)
    code, out, _err = run_cli(capsys, "list", "--queue", QUEUE)
    assert code == 0 and len(out) == 2 and str(events[1].id) in out[1]
    code, out, _err = run_cli(capsys, "replay", "--all")
    assert code == 0 and f"replayed {events[1].id} ({ImageIngested.TYPE}) to {QUEUE}" in out
    with consuming(bus, {ImageIngested.TYPE: handler}):
        wait_until(lambda: str(events[1].id) in healthy)
    assert healthy.count(str(events[0].id)) == 1
    assert run_cli(capsys, "list")[1] == [f"no dead letters in {', '.join(topology.QUEUES)}"]
    bus.close()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["list", "--queue", "no.such"], "unknown queue 'no.such'"),
        (["replay", "--queue", QUEUE, "--id", "00000000-0000-0000-0000-000000000000"], "not dead-lettered"),
        (["replay", "--queue", QUEUE], "needs either --id"),
        (["replay", "--id", "00000000-0000-0000-0000-000000000000"], "needs --queue"),
    ],
)
def test_dlq_mistakes_are_one_line_and_exit_2(
    broker_env: RabbitBus, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == [] and len(err) == 1 and message in err[0], err


def test_dlq_with_an_unreachable_broker_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDAL_BROKER_URL", "amqp://guest:guest@127.0.0.1:9/%2F")
    code, _out, err = run_cli(capsys, "list")
    assert code == 2 and err == ["medal: error: cannot connect to RabbitMQ at 127.0.0.1:9: AMQPConnectionError"]


def test_dlq_in_embedded_mode_says_where_the_dead_letters_are(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MEDAL_BROKER_URL", raising=False)
    code, _out, err = run_cli(capsys, "replay", "--all")
    assert code == 2 and len(err) == 1 and "running `medal up` process" in err[0]
