"""Pure rules of query: shard splitting and building a selection record from stored scores."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from services.query.selection_runs import (
    ScoredPool,
    random_seed,
    select_batch,
    shard_sizes,
    split_into_shards,
)


@pytest.mark.parametrize(
    ("count", "sizes"),
    [(0, []), (1, [1]), (64, [64]), (65, [33, 32]), (130, [44, 43, 43]), (200, [50, 50, 50, 50])],
)
def test_shards_are_few_even_and_at_most_64(count: int, sizes: list[int]) -> None:
    assert shard_sizes(count) == sizes


def test_split_keeps_the_order_and_every_item_once() -> None:
    items = list(range(150))
    shards = split_into_shards(items, max_items=64)
    assert [len(s) for s in shards] == [50, 50, 50]
    assert [i for shard in shards for i in shard] == items


def test_split_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        shard_sizes(3, max_items=0)
    with pytest.raises(ValueError):
        shard_sizes(-1)


def pool(n: int = 10, bald: bool = False) -> ScoredPool:
    """Uncertainty falls with the row; descriptors: rows 0-4 point one way, 5-9 another."""
    rng = np.random.default_rng(0)
    descriptors = np.zeros((n, 4))
    descriptors[: n // 2, 0] = 1.0
    descriptors[n // 2 :, 1] = 1.0
    descriptors += rng.normal(0, 0.01, size=descriptors.shape)
    return ScoredPool(
        image_ids=[f"img-{i}" for i in range(n)],
        uncertainty=np.linspace(1.0, 0.1, n),
        entropy=np.linspace(0.1, 1.0, n),
        bald=np.array([0.5] * n) if bald else None,
        descriptors=descriptors,
    )


def test_suggestive_picks_dissimilar_candidates_and_keeps_the_rest_as_backlog() -> None:
    outcome = select_batch(pool(), "suggestive", candidates=6, batch=2, seed=0)
    assert outcome.candidates == [f"img-{i}" for i in range(6)]  # top-6 uncertainty, rank order
    assert outcome.chosen == ["img-0", "img-5"]  # most uncertain, then the least similar to it
    assert outcome.backlog == ["img-1", "img-2", "img-3", "img-4", "img-6", "img-7", "img-8", "img-9"]
    assert outcome.scores[0] == {"uncertainty": 1.0, "entropy": 0.1, "bald": None}
    assert len(outcome.scores) == len(outcome.candidates)


def test_top_score_strategies_choose_the_head_of_their_ranking() -> None:
    by_entropy = select_batch(pool(), "entropy", candidates=4, batch=3, seed=0)
    assert by_entropy.chosen == ["img-9", "img-8", "img-7"] and by_entropy.candidates[3] == "img-6"
    assert by_entropy.backlog[0] == "img-6"
    by_uncertainty = select_batch(pool(), "uncertainty", candidates=4, batch=3, seed=0)
    assert by_uncertainty.chosen == ["img-0", "img-1", "img-2"]


def test_bald_needs_bald_scores() -> None:
    with pytest.raises(ValueError, match="BALD"):
        select_batch(pool(), "bald", candidates=4, batch=2, seed=0)
    assert select_batch(pool(bald=True), "bald", candidates=4, batch=2, seed=0).chosen == ["img-0", "img-1"]


def test_random_is_fixed_by_the_model_version() -> None:
    version = uuid.UUID("12345678-1234-5678-1234-567812345678")
    first = select_batch(pool(), "random", candidates=4, batch=3, seed=random_seed(version))
    again = select_batch(pool(), "random", candidates=4, batch=3, seed=random_seed(version))
    other = select_batch(pool(), "random", candidates=4, batch=3, seed=random_seed(uuid.uuid4()))
    assert first == again and len(set(first.chosen)) == 3
    assert set(first.chosen).isdisjoint(first.backlog)
    assert first.chosen != other.chosen or first.backlog != other.backlog


def test_coreset_without_labelled_descriptors_covers_both_clusters() -> None:
    outcome = select_batch(pool(), "coreset", candidates=4, batch=2, seed=0)
    clusters = {int(i.split("-")[1]) // 5 for i in outcome.chosen}
    assert clusters == {0, 1} and outcome.candidates[:2] == outcome.chosen


def test_small_pool_and_backlog_limit() -> None:
    outcome = select_batch(pool(3), "suggestive", candidates=16, batch=8, seed=0)
    assert sorted(outcome.chosen) == ["img-0", "img-1", "img-2"] and outcome.backlog == []
    limited = select_batch(pool(10), "uncertainty", candidates=2, batch=1, seed=0, backlog_limit=3)
    assert limited.backlog == ["img-1", "img-2", "img-3"]
    with pytest.raises(ValueError, match="empty"):
        select_batch(pool(0), "uncertainty", candidates=2, batch=1, seed=0)


def test_scores_that_do_not_line_up_are_refused() -> None:
    with pytest.raises(ValueError, match="line up"):
        ScoredPool(["a", "b"], np.zeros(2), np.zeros(1), None, np.zeros((2, 3)))
