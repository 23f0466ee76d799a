"""Tables owned by the ingest service. Every identifier here is de-identified."""

from sqlalchemy import Boolean, Column, Float, ForeignKey, Integer, String, Table, UniqueConstraint

from medal.db.schema.base import KEY_STR, SHA256_STR, UUID_STR, UTCDateTime, metadata

studies = Table(
    "ingest_studies",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("project", String(63), nullable=False),
    Column("study_uid", String(64), nullable=False, comment="Pseudonymous 2.25 UID"),
    Column("patient_pseudo_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("project", "study_uid"),
)

series = Table(
    "ingest_series",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("study_id", UUID_STR, ForeignKey("ingest_studies.id"), nullable=False, index=True),
    Column("series_uid", String(64), nullable=False, unique=True),
    Column("modality", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

instances = Table(
    "ingest_instances",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("series_id", UUID_STR, ForeignKey("ingest_series.id"), nullable=False, index=True),
    Column("sop_uid", String(64), nullable=False, unique=True),
    Column("dicom_key", KEY_STR, nullable=False),
    Column("dicom_sha256", SHA256_STR, nullable=False),
    Column("frames", Integer, nullable=False),
    Column("quarantined", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

images = Table(
    "ingest_images",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("instance_id", UUID_STR, ForeignKey("ingest_instances.id"), nullable=False),
    Column("frame", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("display_key", KEY_STR, nullable=False),
    Column("display_sha256", SHA256_STR, nullable=False),
    Column("training_key", KEY_STR, nullable=False),
    Column("training_sha256", SHA256_STR, nullable=False),
    Column("training_offset", Integer, nullable=False, comment="Added to modality values before 16-bit storage"),
    Column("pixel_spacing_row", Float, nullable=True),
    Column("pixel_spacing_col", Float, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("instance_id", "frame"),
)
