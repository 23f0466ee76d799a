"""Every table, grouped by the service that owns it (docs/adr/0003-table-ownership.md).

A service reads and writes only the tables of its own module here (plus ``messaging``, the
outbox and inbox every service uses through medal.db.messaging); an architecture test checks it.
"""

from medal.db.schema import access as access
from medal.db.schema import annotation, ingest, messaging
from medal.db.schema import inference as inference
from medal.db.schema import query as query
from medal.db.schema import trainer as trainer
from medal.db.schema.base import metadata

__all__ = ["annotation", "ingest", "messaging", "metadata"]
