"""Tables owned by the query service: rounds, pool-scoring runs, their shards, per-image scores, selections.

A round's pool and selection spec come from its round.completed.v1 (the latest attempt); one run per
model version (the model.trained.v2 that started it, with what its round recorded). Scores are kept
per image so that every selection can be audited and replayed from what was stored.
"""

from sqlalchemy import JSON, Column, Float, ForeignKey, Integer, LargeBinary, String, Table

from medal.db.schema.base import KEY_STR, UUID_STR, UTCDateTime, metadata

rounds = Table(
    "query_rounds",
    metadata,
    Column("round_id", UUID_STR, primary_key=True),
    Column("project", String(63), nullable=False, index=True),
    Column("round_number", Integer, nullable=False),
    Column("attempt", Integer, nullable=False, comment="The latest attempt of the round: a retry replaces the pool"),
    Column("pool_key", KEY_STR, nullable=False, comment="Manifest of the unlabelled pool"),
    Column("selection", JSON, nullable=False, comment="SelectionSpec: strategy, K, k"),
    Column("recorded_at", UTCDateTime, nullable=False),
)

runs = Table(
    "query_runs",
    metadata,
    Column("model_version_id", UUID_STR, primary_key=True),
    Column("project", String(63), nullable=False, index=True),
    Column("round_id", UUID_STR, nullable=False),
    Column("version", Integer, nullable=False),
    Column("pool_key", KEY_STR, nullable=False),
    Column("pool_size", Integer, nullable=False),
    Column("shard_count", Integer, nullable=False),
    Column("shards_done", Integer, nullable=False, server_default="0"),
    Column("selection", JSON, nullable=False, comment="SelectionSpec: strategy, K, k"),
    Column("member_keys", JSON, nullable=False),
    Column("training", JSON, nullable=False, comment="TrainingSpec of the committee"),
    Column("correlation_id", UUID_STR, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

shards = Table(
    "query_shards",
    metadata,
    Column("model_version_id", UUID_STR, ForeignKey("query_runs.model_version_id"), primary_key=True),
    Column("shard_index", Integer, primary_key=True),
    Column("items", Integer, nullable=False),
    Column("state", String(16), nullable=False, comment="queued or done"),
    Column("done_at", UTCDateTime, nullable=True),
)

scores = Table(
    "query_scores",
    metadata,
    Column("model_version_id", UUID_STR, ForeignKey("query_runs.model_version_id"), primary_key=True),
    Column("image_id", UUID_STR, primary_key=True),
    Column("position", Integer, nullable=False, comment="Row of the image in the pool manifest"),
    Column("uncertainty", Float, nullable=False),
    Column("entropy", Float, nullable=False),
    Column("bald", Float, nullable=True),
    Column("descriptor", LargeBinary, nullable=False, comment="float32 descriptor, ndarray.tobytes()"),
)

selections = Table(
    "query_selections",
    metadata,
    Column("id", UUID_STR, primary_key=True),
    Column("model_version_id", UUID_STR, ForeignKey("query_runs.model_version_id"), nullable=False, unique=True),
    Column("project", String(63), nullable=False, index=True),
    Column("strategy", String(32), nullable=False),
    Column("candidates_k", Integer, nullable=False, comment="K: candidates considered"),
    Column("batch_k", Integer, nullable=False, comment="k: images chosen"),
    Column("pool_size", Integer, nullable=False),
    Column("candidates", JSON, nullable=False, comment="Image ids in rank order"),
    Column("scores", JSON, nullable=False, comment="Per candidate: uncertainty, entropy, bald"),
    Column("chosen", JSON, nullable=False, comment="Image ids in the order chosen"),
    Column("backlog", JSON, nullable=False, comment="Next-best image ids, best first"),
    Column("created_at", UTCDateTime, nullable=False),
)
