"""Tables owned by the annotation service."""

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from medal.db.schema.base import KEY_STR, SHA256_STR, UUID_STR, UTCDateTime, metadata

projects = Table(
    "annotation_projects",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("settings", JSON, nullable=False, server_default="{}", comment="ProjectSettings as JSON"),
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
    Column("training_offset", Integer, nullable=False, server_default="0"),
    Column("dicom_key", KEY_STR, nullable=True, comment="De-identified source instance"),
    Column("held_out", Boolean, nullable=False, server_default="0", comment="Evaluation set: never in the pool"),
    Column("created_at", UTCDateTime, nullable=False),
)

rounds = Table(
    "annotation_rounds",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("project_id", UUID_STR, ForeignKey("annotation_projects.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("state", String(16), nullable=False, comment="open | completed | training-failed"),
    Column("source", String(32), nullable=False, comment="cold-start | selection | backlog"),
    Column("selection_id", UUID_STR, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("attempt", Integer, nullable=False, server_default="1", comment="Training attempt: 2, 3 … after retries"),
    Column("failure_code", String(32), nullable=True, comment="Why training failed (round.failed.v1 code)"),
    Column("failure_reason", String(2000), nullable=True, comment="What went wrong and what to fix (no PHI)"),
    Column("failed_at", UTCDateTime, nullable=True),
    UniqueConstraint("project_id", "number"),
)

tasks = Table(
    "annotation_tasks",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("round_id", UUID_STR, ForeignKey("annotation_rounds.id"), nullable=False),
    Column("project_id", UUID_STR, ForeignKey("annotation_projects.id"), nullable=False),
    Column("image_id", UUID_STR, ForeignKey("annotation_images.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("state", String(16), nullable=False, comment="open | leased | submitted | skipped"),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_token", UUID_STR, nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("submitted_at", UTCDateTime, nullable=True),
    UniqueConstraint("round_id", "image_id"),
    Index(None, "project_id", "state"),
)

masks = Table(
    "annotation_masks",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("image_id", UUID_STR, ForeignKey("annotation_images.id"), nullable=False),
    Column("project_id", UUID_STR, ForeignKey("annotation_projects.id"), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("key", KEY_STR, nullable=False),
    Column("sha256", SHA256_STR, nullable=False),
    Column("machine_made", Boolean, nullable=False),
    Column("model_version_id", UUID_STR, nullable=True),
    Column("confidence", Float, nullable=True),
    Column("author", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("approved_by", String(128), nullable=True, comment="The reviewer who approved this version"),
    Column("approved_at", UTCDateTime, nullable=True),
    UniqueConstraint("image_id", "version"),
)

models = Table(
    "annotation_models",
    metadata,
    Column("id", UUID_STR, primary_key=True, comment="Model version id from the trainer"),
    Column("project_id", UUID_STR, ForeignKey("annotation_projects.id"), nullable=False),
    Column("round_id", UUID_STR, nullable=False),
    Column("version", Integer, nullable=False),
    Column("labels", Integer, nullable=False),
    Column("validation_dice", Float, nullable=False),
    Column("member_keys", JSON, nullable=False),
    Column("training", JSON, nullable=False),
    Column("current", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("project_id", "version"),
)

selections = Table(
    "annotation_selections",
    metadata,
    Column("id", UUID_STR, primary_key=True, comment="Selection id from the query service"),
    Column("project_id", UUID_STR, ForeignKey("annotation_projects.id"), nullable=False),
    Column("model_version_id", UUID_STR, nullable=False),
    Column("chosen", JSON, nullable=False),
    Column("backlog", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

autolabel_jobs = Table(
    "annotation_autolabel_jobs",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("project_id", UUID_STR, ForeignKey("annotation_projects.id"), nullable=False),
    Column("model_version_id", UUID_STR, nullable=False),
    Column("shard_count", Integer, nullable=False),
    Column("images", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

autolabel_shards = Table(
    "annotation_autolabel_shards",
    metadata,
    Column("job_id", UUID_STR, ForeignKey("annotation_autolabel_jobs.id"), primary_key=True),
    Column("shard_index", Integer, primary_key=True),
    Column("completed_at", UTCDateTime, nullable=False),
)
