"""Generates proto/schemas/*.json from the pydantic models (`python -m proto.schema_gen`).

A test regenerates them in memory and fails when the checked-in files drift from the code.
"""

from __future__ import annotations

import json
from pathlib import Path

from proto import ALL_MESSAGES
from proto.envelope import Envelope, Message

SCHEMA_DIR = Path(__file__).parent / "schemas"


def schema_documents() -> dict[str, str]:
    """File name → JSON text of every schema."""
    docs: dict[str, str] = {"envelope.json": _dump(Envelope.model_json_schema())}
    for message_type in ALL_MESSAGES:
        docs[f"{message_type.TYPE}.json"] = _dump(_message_schema(message_type))
    return docs


def _message_schema(message_type: type[Message]) -> dict[str, object]:
    schema = message_type.model_json_schema()
    schema["$id"] = f"https://medal.dev/proto/{message_type.TYPE}.json"
    schema["x-medal-type"] = message_type.TYPE
    schema["x-medal-kind"] = message_type.KIND
    return schema


def _dump(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for stale in SCHEMA_DIR.glob("*.json"):
        stale.unlink()
    for name, text in schema_documents().items():
        (SCHEMA_DIR / name).write_text(text)


if __name__ == "__main__":
    main()
