"""`medal dlq list [--queue Q]` and `medal dlq replay [--queue Q] (--id ID ... | --all)`: dead letters.

Distributed mode only: it talks to RabbitMQ (MEDAL_BROKER_URL, MEDAL_BUS_NAMESPACE). The embedded
bus keeps its dead letters in the memory of the running `medal up` process, which a second process
cannot reach; there, the outbox table is the durable record of every message.

``list`` shows one line per dead letter: queue, message id, type, tries, when and the reason, never
the body. ``replay`` puts the chosen letters back on their work queue once each (with a fresh retry
schedule); a letter leaves the dead-letter queue only after the broker confirmed its republish.
"""

from __future__ import annotations

import argparse
import sys

from medal.bus import BusError, DeadLetter, UnknownDeadLetter
from medal.preflight import ConfigurationError, load_settings
from proto import topology

EMBEDDED = (
    "dead letters of the embedded bus live in the running `medal up` process and end with it; "
    "`medal dlq` works in distributed mode (set MEDAL_BROKER_URL)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dlq", help="list or replay dead-lettered bus messages (distributed mode)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every dead letter per queue: id, type, tries, when, reason")
    replay = actions.add_parser("replay", help="put dead letters back on their work queue, once each")
    for action in (listing, replay):
        action.add_argument("--queue", default=None, help=f"one of {', '.join(topology.QUEUES)} (default: all)")
    replay.add_argument("--id", dest="ids", action="append", default=None, metavar="MESSAGE_ID")
    replay.add_argument("--all", action="store_true", help="every dead letter of the queue(s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.broker_url:
        raise ConfigurationError(EMBEDDED)
    queues = _queues(args.queue)
    if args.action == "replay" and bool(args.ids) == bool(args.all):
        raise ConfigurationError("`medal dlq replay` needs either --id MESSAGE_ID (repeatable) or --all")
    from medal.bus import build_bus

    bus = build_bus(settings)
    try:
        if args.action == "list":
            _print_letters({queue: bus.dead_letters(queue) for queue in queues})
            return 0
        if args.ids and len(queues) > 1:
            raise ConfigurationError("`medal dlq replay --id` needs --queue: a message id belongs to one queue")
        for queue in queues:
            replayed = bus.replay(queue, args.ids)
            for letter in replayed:
                print(f"replayed {letter.message_id or '?'} ({letter.message_type or '?'}) to {queue}")
            if not replayed:
                print(f"{queue}: no dead letters")
        return 0
    except BusError as exc:
        raise ConfigurationError(str(exc)) from None
    except UnknownDeadLetter as exc:
        raise ConfigurationError(f"{exc}; nothing was replayed") from None
    finally:
        bus.close()


def _queues(queue: str | None) -> list[str]:
    if queue is None:
        return list(topology.QUEUES)
    if queue not in topology.QUEUES:
        raise ConfigurationError(f"unknown queue {queue!r}: one of {', '.join(topology.QUEUES)}")
    return [queue]


def _print_letters(letters: dict[str, list[DeadLetter]]) -> None:
    rows = [
        (
            letter.queue,
            letter.message_id or "?",
            letter.message_type or "?",
            str(letter.attempts),
            letter.dead_lettered_at.strftime("%Y-%m-%dT%H:%M:%SZ") if letter.dead_lettered_at else "?",
            " ".join(letter.reason.split())[:200],
        )
        for queue_letters in letters.values()
        for letter in queue_letters
    ]
    if not rows:
        print(f"no dead letters in {', '.join(letters)}")
        return
    header = ("queue", "message id", "type", "tries", "dead-lettered at", "reason")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)))
        sys.stdout.write(f"  {row[5]}\n")
