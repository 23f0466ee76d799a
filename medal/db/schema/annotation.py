"""Tables owned by the annotation service."""

from sqlalchemy import Column, ForeignKey, Integer, String, Table

from medal.db.schema.base import KEY_STR, UUID_STR, UTCDateTime, metadata

projects = Table(
    "annotation_projects",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

images = Table(
    "annotation_images",
    metadata,
    Column("id", UUID_STR, primary_key=True, comment="The image id ingest assigned"),
    Column("project_id", UUID_STR, ForeignKey("annotation_projects.id"), nullable=False, index=True),
    Column("study_id", UUID_STR, nullable=False),
    Column("series_id", UUID_STR, nullable=False),
    Column("instance_id", UUID_STR, nullable=False),
    Column("frame", Integer, nullable=False),
    Column("modality", String(16), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("display_key", KEY_STR, nullable=False),
    Column("training_key", KEY_STR, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
