"""Tables owned by the inference service: images it may predict, model versions, auto-label shards.

Which model version is current is the trainer's decision: a version is recorded from model.trained.v2
as not current, and only model.promoted.v1 makes one current (the promotion sent last wins).
"""

from sqlalchemy import JSON, Boolean, Column, Index, Integer, String, Table

from medal.db.schema.base import KEY_STR, UUID_STR, UTCDateTime, metadata

images = Table(
    "inference_images",
    metadata,
    Column("id", UUID_STR, primary_key=True, comment="The image id ingest assigned"),
    Column("project", String(63), nullable=False, index=True),
    Column("training_key", KEY_STR, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

models = Table(
    "inference_models",
    metadata,
    Column("id", UUID_STR, primary_key=True, comment="Model version id"),
    Column("project", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("member_keys", JSON, nullable=False),
    Column("training", JSON, nullable=False, comment="TrainingSpec of the committee"),
    Column("current", Boolean, nullable=False),
    Column("promoted_at", UTCDateTime, nullable=True, comment="When the trainer promoted it last (message time)"),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "project", "current"),
)

autolabel_shards = Table(
    "inference_autolabel_shards",
    metadata,
    Column("job_id", UUID_STR, primary_key=True),
    Column("shard_index", Integer, primary_key=True),
    Column("project", String(63), nullable=False),
    Column("model_version_id", UUID_STR, nullable=False),
    Column("shard_count", Integer, nullable=False),
    Column("predictions", JSON, nullable=False, comment="Per image: mask key, sha256, confidence"),
    Column("created_at", UTCDateTime, nullable=False),
)
