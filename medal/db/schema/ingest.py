"""Tables owned by the ingest service. Every identifier here is de-identified, except in
``ingest_original_uids``, which only projects that opted in fill (docs/adr/0034)."""

from sqlalchemy import Boolean, Column, Float, ForeignKey, Integer, String, Table, UniqueConstraint, false

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
    Column("quarantine_reason", String(200), nullable=True, comment="Why it waits for review (no values quoted)"),
    Column("released_at", UTCDateTime, nullable=True),
    Column("released_by", String(64), nullable=True),
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
    Column("pixel_spacing_source", String(64), nullable=True, comment="Attribute the spacing came from"),
    Column("orientation", String(200), nullable=True, comment="ImageOrientationPatient, six numbers"),
    Column("position", String(120), nullable=True, comment="ImagePositionPatient, three numbers"),
    Column("window_center", Float, nullable=True, comment="Window of the display PNG; null: min-max or VOI LUT"),
    Column("window_width", Float, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("instance_id", "frame"),
)

project_settings = Table(
    "ingest_project_settings",
    metadata,
    Column("project", String(63), primary_key=True),
    Column("date_policy", String(16), nullable=False, comment="shift (Modified Dates option) or remove"),
    Column("window_center", Float, nullable=True, comment="Display preset; null: the image's own window"),
    Column("window_width", Float, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column(
        "keep_original_uids",
        Boolean,
        nullable=False,
        server_default=false(),
        comment="Opt-in: keep the original-to-pseudonym UID mapping (ingest_original_uids); off by default",
    ),
)

jobs = Table(
    "ingest_jobs",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("project", String(63), nullable=False, index=True),
    Column("source", String(16), nullable=False, comment="upload, zip, stow, cli, dimse or pull"),
    Column("submitted_by", String(64), nullable=True, comment="The authenticated caller (null: before 0019)"),
    Column("status", String(16), nullable=False, comment="running or completed"),
    Column("total", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("quarantined", Integer, nullable=False),
    Column("refused", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime, nullable=True),
)

job_items = Table(
    "ingest_job_items",
    metadata,
    Column("job_id", UUID_STR, ForeignKey("ingest_jobs.id"), primary_key=True),
    Column("position", Integer, primary_key=True, comment="Order in the submission; names are never stored"),
    Column("outcome", String(16), nullable=False, comment="accepted, quarantined, duplicate or refused"),
    Column("code", String(40), nullable=True),
    Column("reason", String(300), nullable=True),
    Column("instance_id", UUID_STR, nullable=True),
    Column("images", Integer, nullable=False),
)

original_uids = Table(
    "ingest_original_uids",
    metadata,
    Column("project", String(63), primary_key=True),
    Column("uid", String(64), primary_key=True, comment="Pseudonymous 2.25 UID as stored"),
    Column("level", String(8), nullable=False, comment="study, series or instance"),
    Column("original_uid", String(64), nullable=False, comment="PHI-adjacent: never logged, never on the bus"),
    Column("created_at", UTCDateTime, nullable=False),
)

original_uid_reads = Table(
    "ingest_original_uid_reads",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("project", String(63), nullable=False, index=True),
    Column("caller", String(64), nullable=False, comment="Who resolved (the authenticated caller)"),
    Column("purpose", String(40), nullable=False, comment="e.g. seg-export"),
    Column("instances", Integer, nullable=False, comment="How many UIDs were resolved (the UIDs are not kept)"),
    Column("created_at", UTCDateTime, nullable=False),
)
