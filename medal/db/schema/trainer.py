"""Tables owned by the trainer service: rounds to train, member jobs (leased), the model registry.

See docs/adr/0020-active-learning-loop-across-services.md: a job is claimed with a compare-and-set
on its lease, heartbeated while it trains, and finished only by the holder of the current lease.
A round that fails keeps its reason; a person's retry raises its ``attempt`` and adds that
attempt's jobs beside the failed ones (services/trainer/states.py lists the states).
"""

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from medal.db.schema.base import KEY_STR, SHA256_STR, UUID_STR, UTCDateTime, metadata

rounds = Table(
    "trainer_rounds",
    metadata,
    Column("id", UUID_STR, primary_key=True, comment="The round id annotation assigned"),
    Column("project", String(63), nullable=False, index=True),
    Column("round_number", Integer, nullable=False),
    Column("labels", Integer, nullable=False),
    Column("labelled_set_key", KEY_STR, nullable=False, comment="Labelled set of the current attempt"),
    Column("committee_size", Integer, nullable=False),
    Column("training", Text, nullable=False, comment="TrainingSpec as JSON"),
    Column("seed", BigInteger, nullable=False),
    Column("correlation_id", UUID_STR, nullable=False),
    Column("state", String(16), nullable=False, comment="training | trained | failed"),
    Column(
        "attempt", Integer, nullable=False, server_default="1", comment="1, then 2, 3 … each time a person retries it"
    ),
    Column(
        "failure_code", String(32), nullable=True, comment="bad-training-data | attempts-exhausted | round-rejected"
    ),
    Column("failure_reason", Text, nullable=True, comment="What went wrong and what to fix (no PHI)"),
    Column("failed_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

jobs = Table(
    "trainer_jobs",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("round_id", UUID_STR, ForeignKey("trainer_rounds.id"), nullable=False),
    Column("project", String(63), nullable=False, index=True),
    Column("round_attempt", Integer, nullable=False, server_default="1", comment="The round's attempt it trains for"),
    Column("member_index", Integer, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("state", String(16), nullable=False, comment="queued | running | done | failed"),
    Column("attempts", Integer, nullable=False),
    Column("lease_token", UUID_STR, nullable=True),
    Column("lease_owner", String(128), nullable=True, comment="host:pid of the worker holding the lease"),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("heartbeat_at", UTCDateTime, nullable=True),
    Column("epoch", Integer, nullable=True),
    Column("max_epochs", Integer, nullable=False),
    Column("loss", Float, nullable=True, comment="Training loss of the last epoch"),
    Column("validation_dice", Float, nullable=True),
    Column("eta_seconds", Float, nullable=True),
    Column("weights_key", KEY_STR, nullable=True),
    Column("weights_sha256", SHA256_STR, nullable=True),
    Column("train_seconds", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    UniqueConstraint("round_id", "round_attempt", "member_index"),
    Index("ix_trainer_jobs_state_created_at", "state", "created_at"),
)

model_versions = Table(
    "trainer_model_versions",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("project", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("round_id", UUID_STR, ForeignKey("trainer_rounds.id"), nullable=False, unique=True),
    Column("round_number", Integer, nullable=False),
    Column("labels", Integer, nullable=False),
    Column("labelled_set_key", KEY_STR, nullable=False, comment="Snapshot of the labelled set"),
    Column("members", Text, nullable=False, comment="JSON list of {index, weights_key, sha256, dice, epochs}"),
    Column("validation_dice", Float, nullable=False, comment="Mean of the members' validation Dice"),
    Column("training", Text, nullable=False, comment="TrainingSpec as JSON"),
    Column("status", String(16), nullable=False, comment="candidate | current | retired"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("promoted_at", UTCDateTime, nullable=True),
    Column(
        "promoted_by",
        String(128),
        nullable=True,
        comment="Who made it current by a promote or roll-back request (null: the trainer, as it was registered); "
        "while the current version has one, new versions wait as candidates",
    ),
    UniqueConstraint("project", "version"),
)
