"""The refusals of the query service, each with its stable code (mapped once at the HTTP and bus edges)."""

from __future__ import annotations

from medal.domain_errors import Invalid, NotFound, NotYetAvailable


class SelectionNotFound(NotFound):
    code = "selection-not-found"


class RoundNotRecorded(NotYetAvailable):
    """model.trained.v2 came before its round's round.completed.v1 (they race on the queue): retried."""

    code = "round-not-recorded"


class PoolManifestMissing(NotFound):
    """The pool manifest a round names is not in object storage: the run can never start."""

    code = "pool-manifest-missing"


class PoolManifestUnreadable(Invalid):
    code = "pool-manifest-unreadable"


class RunNotFound(NotFound):
    """A shard names a model version without a scoring run (shards are only sent after their run commits)."""

    code = "run-not-found"
