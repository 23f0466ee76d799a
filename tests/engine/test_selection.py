"""Selection strategies on small hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from services.query.selection import (
    cosine_similarity,
    select_coreset,
    select_random,
    select_suggestive,
    select_suggestive_coverage,
    select_top_scores,
)


def test_top_scores_highest_first_ties_to_lower_position() -> None:
    assert select_top_scores(np.array([0.1, 0.5, 0.3, 0.5]), 3) == [1, 3, 2]


def test_top_scores_rejects_more_than_the_pool() -> None:
    with pytest.raises(ValueError, match="cannot select 3 images from a pool of 2"):
        select_top_scores(np.array([0.1, 0.2]), 3)


def test_cosine_similarity_hand_values() -> None:
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    similarity = cosine_similarity(a, a)
    assert similarity[0, 1] == pytest.approx(1 / np.sqrt(2))
    assert similarity[0, 0] == pytest.approx(1.0)
    assert similarity[2].tolist() == [0.0, 0.0, 0.0]  # a zero descriptor is similar to nothing


def test_suggestive_starts_with_most_uncertain_then_least_similar() -> None:
    # Pool of 5; K = 4 keeps images 0, 1, 2, 3 (uncertainty 0.9, 0.8, 0.7, 0.6); image 4 is dropped.
    uncertainty = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    descriptors = np.array(
        [
            [1.0, 0.0],  # 0: most uncertain, chosen first
            [0.99, 0.14],  # 1: almost the same direction as 0 (cos ~ 0.99)
            [0.0, 1.0],  # 2: orthogonal to 0 (cos 0)
            [0.7, 0.7],  # 3: cos 0.707 with both 0 and 2
            [-1.0, 0.0],  # 4: most dissimilar of all but not among the K most uncertain
        ]
    )
    # Step 2: f({0}, x) = 0.99, 0, 0.707 for x = 1, 2, 3 -> choose 2.
    # Step 3: f({0, 2}, x) = max(0.99, 0.14) = 0.99 for 1, 0.707 for 3 -> choose 3.
    assert select_suggestive(uncertainty, descriptors, K=4, k=3) == [0, 2, 3]


def test_suggestive_with_k_equal_K_returns_all_candidates() -> None:
    uncertainty = np.array([0.2, 0.4, 0.3])
    descriptors = np.eye(3)
    assert sorted(select_suggestive(uncertainty, descriptors, K=3, k=3)) == [0, 1, 2]
    assert select_suggestive(uncertainty, descriptors, K=3, k=3)[0] == 1


def test_suggestive_rejects_k_above_K() -> None:
    with pytest.raises(ValueError, match=r"k \(3\) must not exceed K \(2\)"):
        select_suggestive(np.ones(4), np.eye(4), K=2, k=3)


def test_suggestive_coverage_picks_the_best_representative_of_the_pool() -> None:
    # Four pool images; all are candidates (K = 4).
    # Descriptors: a cluster of three near [1, 0] and one image at [0, 1].
    uncertainty = np.array([0.9, 0.8, 0.7, 0.6])
    descriptors = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.1], [1.0, -0.1]])
    # F({c}) = sum_u max(0, cos(c, u)):
    #   c=0: 1 + 0 + 0.0995 + 0 = 1.0995
    #   c=1: 0 + 1 + 0.995 + 0.995 = 2.990
    #   c=2: 0.0995 + 0.995 + 1 + 0.980 = 3.075   <- first
    #   c=3: 0 + 0.995 + 0.980 + 1 = 2.975
    # Then gains over cover (0.0995, 0.995, 1, 0.980): c=0 gains 0.9005, c=1 0.005, c=3 0.020 -> 0.
    assert select_suggestive_coverage(uncertainty, descriptors, K=4, k=2) == [2, 0]


def test_suggestive_coverage_only_chooses_among_the_K_most_uncertain() -> None:
    uncertainty = np.array([0.1, 0.9, 0.8])
    descriptors = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    # Image 0 would cover best, but K = 2 keeps only images 1 and 2.
    assert set(select_suggestive_coverage(uncertainty, descriptors, K=2, k=1)) <= {1, 2}


def test_coreset_cold_start_starts_at_the_most_typical_then_farthest() -> None:
    pool = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [0.5, 0.0]])
    # mean = (2.875, 0); nearest to it: image 1 (distance 1.875). Farthest from image 1: image 2 (9).
    # Then nearest-centre distances: 0 -> 1, 3 -> 0.5 -> choose 0.
    assert select_coreset(pool, None, 3) == [1, 2, 0]


def test_coreset_with_labelled_centres() -> None:
    pool = np.array([[1.0, 0.0], [5.0, 0.0], [2.0, 0.0]])
    labelled = np.array([[0.0, 0.0]])
    # Distances to the labelled centre: 1, 5, 2 -> choose 1; then nearest-centre distances 1, -, 2 -> 2.
    assert select_coreset(pool, labelled, 2) == [1, 2]


def test_random_is_seeded_and_distinct() -> None:
    first = select_random(10, 5, np.random.default_rng(3))
    assert first == select_random(10, 5, np.random.default_rng(3))
    assert len(set(first)) == 5
    assert all(0 <= i < 10 for i in first)
