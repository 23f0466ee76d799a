"""Pure rules of a pool-scoring run: how the pool is split into shards, how a selection record is built.

No I/O: the service layer (services.query.service) reads the stored scores and writes what these
functions return, so a selection can be recomputed from the database (replay) with the same code.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from services.query.selection import (
    select_coreset,
    select_random,
    select_suggestive,
    select_suggestive_coverage,
    select_top_scores,
)

__all__ = [
    "BACKLOG_LIMIT",
    "MAX_SHARD_ITEMS",
    "ScoredPool",
    "SelectionOutcome",
    "random_seed",
    "select_batch",
    "shard_sizes",
    "split_into_shards",
]

#: Most pool items in one pool-shard.score.v1 command.
MAX_SHARD_ITEMS = 64
#: Most next-best candidates sent as the backlog of a batch.selected.v1.
BACKLOG_LIMIT = 128

T = TypeVar("T")


def shard_sizes(count: int, max_items: int = MAX_SHARD_ITEMS) -> list[int]:
    """Sizes of the fewest shards of at most ``max_items`` that hold ``count`` items, as even as possible."""
    if max_items < 1:
        raise ValueError(f"max_items must be positive, got {max_items}")
    if count < 0:
        raise ValueError(f"cannot split {count} items")
    shards = math.ceil(count / max_items)
    if shards == 0:
        return []
    base, extra = divmod(count, shards)
    return [base + 1 if index < extra else base for index in range(shards)]


def split_into_shards(items: Sequence[T], max_items: int = MAX_SHARD_ITEMS) -> list[list[T]]:
    """Consecutive slices of ``items`` with the sizes of :func:`shard_sizes` (order kept)."""
    shards, start = [], 0
    for size in shard_sizes(len(items), max_items):
        shards.append(list(items[start : start + size]))
        start += size
    return shards


def random_seed(model_version_id: uuid.UUID) -> int:
    """The seed of the random strategy for a model version (the same on every replay)."""
    return model_version_id.int % 2**63


@dataclass(frozen=True)
class ScoredPool:
    """Stored scores of a whole pool, in pool-manifest order (row i = pool image i).

    Attributes:
        image_ids: (n,) image ids.
        uncertainty: (n,) committee variance (Yang et al. 2017).
        entropy: (n,) softmax entropy of the first member.
        bald: (n,) MC-dropout mutual information, or None when it was not computed.
        descriptors: (n, D) member-mean image descriptors.
    """

    image_ids: list[str]
    uncertainty: NDArray[np.float64]
    entropy: NDArray[np.float64]
    bald: NDArray[np.float64] | None
    descriptors: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        shapes = [len(self.uncertainty), len(self.entropy), len(self.descriptors)]
        if self.bald is not None:
            shapes.append(len(self.bald))
        if any(size != n for size in shapes) or np.asarray(self.descriptors).ndim != 2:
            raise ValueError(f"scores of {n} images do not line up: {shapes}")


@dataclass(frozen=True)
class SelectionOutcome:
    """What a selection record holds: candidates in rank order with their scores, chosen, backlog."""

    strategy: str
    candidates: list[str]
    scores: list[dict[str, float | None]]
    chosen: list[str]
    backlog: list[str]


def _ranking(pool: ScoredPool, strategy: str, length: int, seed: int) -> list[int]:
    """The first ``length`` pool rows in the strategy's order of preference."""
    if strategy in ("suggestive", "suggestive-coverage", "uncertainty"):
        return select_top_scores(pool.uncertainty, length)
    if strategy == "entropy":
        return select_top_scores(pool.entropy, length)
    if strategy == "bald":
        if pool.bald is None:
            raise ValueError("the bald strategy needs BALD scores")
        return select_top_scores(pool.bald, length)
    if strategy == "coreset":
        # No labelled descriptors are kept by query: k-center greedy from the most typical pool image.
        return select_coreset(pool.descriptors, None, length)
    if strategy == "random":
        return select_random(len(pool.image_ids), length, np.random.default_rng(seed))
    raise ValueError(f"unknown strategy {strategy!r}")


def select_batch(
    pool: ScoredPool,
    strategy: str,
    candidates: int,
    batch: int,
    *,
    seed: int,
    backlog_limit: int = BACKLOG_LIMIT,
) -> SelectionOutcome:
    """Choose up to ``batch`` images (k) among the ``candidates`` (K) best of the pool.

    The ranking is the strategy's order of preference over the pool (uncertainty for the suggestive
    strategies, the score itself for uncertainty/entropy/bald, the k-center greedy order for coreset,
    a permutation seeded by ``seed`` for random). The candidates are its first max(K, k) rows; the
    suggestive strategies pick k of them by dissimilarity (or coverage), the others take the first k.
    The backlog is the rest of the ranking, best first, at most ``backlog_limit`` images.
    """
    n = len(pool.image_ids)
    if n == 0:
        raise ValueError("cannot select from an empty pool")
    if candidates < 1 or batch < 1:
        raise ValueError("K and k must be positive")
    k = min(batch, n)
    top = min(max(candidates, batch), n)
    ranking = _ranking(pool, strategy, min(n, max(top, k + backlog_limit)), seed)
    if strategy == "suggestive":
        chosen_rows = select_suggestive(pool.uncertainty, pool.descriptors, top, k)
    elif strategy == "suggestive-coverage":
        chosen_rows = select_suggestive_coverage(pool.uncertainty, pool.descriptors, top, k)
    else:
        chosen_rows = ranking[:k]
    chosen_set = set(chosen_rows)
    backlog_rows = [row for row in ranking if row not in chosen_set][:backlog_limit]
    candidate_rows = ranking[:top]
    return SelectionOutcome(
        strategy=strategy,
        candidates=[pool.image_ids[row] for row in candidate_rows],
        scores=[_scores_of(pool, row) for row in candidate_rows],
        chosen=[pool.image_ids[row] for row in chosen_rows],
        backlog=[pool.image_ids[row] for row in backlog_rows],
    )


def _scores_of(pool: ScoredPool, row: int) -> dict[str, float | None]:
    return {
        "uncertainty": float(pool.uncertainty[row]),
        "entropy": float(pool.entropy[row]),
        "bald": None if pool.bald is None else float(pool.bald[row]),
    }
