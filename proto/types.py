"""Contract types every service shares: project names, ids, object keys and content hashes.

One definition each, used by the messages here and by every service's HTTP schemas, so a name
that one service accepts is accepted by all of them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

PROJECT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
OBJECT_KEY_PATTERN = r"^[a-z0-9][a-z0-9/._-]{0,511}$"

PROJECT_DESCRIPTION = "Project name: lower-case letters, digits and '-', 1-63 characters, not starting with '-'."

#: A project's name as it appears in URLs, rows and messages.
ProjectName = Annotated[str, Field(pattern=PROJECT_PATTERN, description=PROJECT_DESCRIPTION)]
#: A medal id (image, study, round, model version …) in its canonical lower-case UUID text form.
Id = Annotated[str, Field(pattern=UUID_PATTERN, description="A medal id (lower-case UUID).")]
#: A key in object storage (content-addressed: ``<kind>/<sha256>.<ext>``).
ObjectKey = Annotated[str, Field(pattern=OBJECT_KEY_PATTERN)]
#: A SHA-256 content hash in lower-case hex.
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]
