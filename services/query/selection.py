"""Query strategies: which unlabelled images to label next. Pure functions over scores and descriptors.

Every function takes per-image arrays of the unlabelled pool (row i = pool image i) and returns the
chosen pool positions in the order they were chosen. No I/O, no torch: the scores come from
services.query.scoring.

- suggestive: Yang et al., MICCAI 2017 (two-stage: top-K uncertain, then k mutually dissimilar).
- suggestive-coverage: Yang et al.'s generalised max-cover of the whole pool by the chosen set.
- uncertainty / entropy / bald: top-k of one per-image score (committee variance, softmax entropy,
  MC-dropout mutual information, Gal et al., ICML 2017).
- coreset: k-center greedy on descriptors (Sener & Savarese, ICLR 2018).
- random: uniform without replacement.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "STRATEGIES",
    "cosine_similarity",
    "select_coreset",
    "select_random",
    "select_suggestive",
    "select_suggestive_coverage",
    "select_top_scores",
]

#: Strategy names and the per-image score each one ranks by (None: it needs no score).
STRATEGIES: dict[str, str | None] = {
    "suggestive": "uncertainty",
    "suggestive-coverage": "uncertainty",
    "uncertainty": "uncertainty",
    "entropy": "entropy",
    "bald": "bald",
    "coreset": None,
    "random": None,
}

FloatArray = NDArray[np.floating]


def _check_count(pool_size: int, k: int) -> None:
    if k < 0:
        raise ValueError(f"cannot select a negative number of images ({k})")
    if k > pool_size:
        raise ValueError(f"cannot select {k} images from a pool of {pool_size}")


def select_random(pool_size: int, k: int, rng: np.random.Generator) -> list[int]:
    """k distinct pool positions drawn uniformly by ``rng``."""
    _check_count(pool_size, k)
    return [int(i) for i in rng.choice(pool_size, size=k, replace=False)]


def select_top_scores(scores: FloatArray, k: int) -> list[int]:
    """The k highest scores, highest first; ties go to the lower position (stable)."""
    scores = np.asarray(scores, dtype=np.float64)
    _check_count(len(scores), k)
    order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order[:k]]


def cosine_similarity(a: FloatArray, b: FloatArray) -> NDArray[np.float64]:
    """Cosine similarity of every row of ``a`` (n, d) with every row of ``b`` (m, d): (n, m).

    A zero row has similarity 0 with everything.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a_norm = np.linalg.norm(a, axis=1, keepdims=True)
    b_norm = np.linalg.norm(b, axis=1, keepdims=True)
    a_unit = np.divide(a, a_norm, out=np.zeros_like(a), where=a_norm > 0)
    b_unit = np.divide(b, b_norm, out=np.zeros_like(b), where=b_norm > 0)
    return np.asarray(a_unit @ b_unit.T, dtype=np.float64)


def select_suggestive(uncertainty: FloatArray, descriptors: FloatArray, K: int, k: int) -> list[int]:
    """Suggestive annotation (Yang et al. 2017), the seed's rule.

    Take the K most uncertain pool images; start the chosen set S with the most uncertain one, then
    repeatedly add the candidate x with the lowest representativeness f(S, x) = max over s in S of
    cosine(s, x), i.e. the candidate least similar to what is already chosen. Ties go to the more
    uncertain candidate.

    Args:
        uncertainty: (n,) committee uncertainty per pool image.
        descriptors: (n, d) image descriptors (mean over the committee).
        K: candidates kept after the uncertainty stage (clipped to n).
        k: images to choose, k <= K.
    """
    descriptors = np.asarray(descriptors, dtype=np.float64)
    candidates = _uncertain_candidates(uncertainty, descriptors, K, k)
    if k == 0:
        return []
    similarity = cosine_similarity(descriptors[candidates], descriptors[candidates])
    chosen = [0]  # positions within candidates; candidates are sorted most uncertain first
    closest = similarity[0].copy()  # f(S, x) for every candidate x
    while len(chosen) < k:
        remaining = [c for c in range(len(candidates)) if c not in chosen]
        best = min(remaining, key=lambda c: (closest[c], c))
        chosen.append(best)
        closest = np.maximum(closest, similarity[best])
    return [candidates[c] for c in chosen]


def select_suggestive_coverage(uncertainty: FloatArray, descriptors: FloatArray, K: int, k: int) -> list[int]:
    """Yang et al.'s generalised max-cover: the k of the K most uncertain that best represent the pool.

    Greedily add the candidate that most increases F(S) = sum over every pool image u of
    max over s in S of max(0, cosine(s, u)); F is monotone submodular, so greedy is within 1 - 1/e of
    the optimum. Ties go to the more uncertain candidate.

    Args: as for :func:`select_suggestive`; the cover is over all n pool images, not just the K.
    """
    descriptors = np.asarray(descriptors, dtype=np.float64)
    candidates = _uncertain_candidates(uncertainty, descriptors, K, k)
    similarity = np.clip(cosine_similarity(descriptors[candidates], descriptors), 0.0, None)  # (K, n)
    cover = np.zeros(len(descriptors), dtype=np.float64)
    chosen: list[int] = []
    while len(chosen) < k:
        gains = np.maximum(similarity, cover[None, :]).sum(axis=1) - cover.sum()
        gains[chosen] = -np.inf
        best = int(np.argmax(gains))  # first maximum = most uncertain among ties
        chosen.append(best)
        cover = np.maximum(cover, similarity[best])
    return [candidates[c] for c in chosen]


def select_coreset(pool_descriptors: FloatArray, labelled_descriptors: FloatArray | None, k: int) -> list[int]:
    """k-center greedy (Sener & Savarese 2018) in descriptor space, Euclidean distance.

    Repeatedly choose the pool image farthest from its nearest centre, where the centres are the
    labelled images and those already chosen. With no labelled image (cold start) the first centre is
    the pool image nearest to the pool's mean descriptor (the most typical one).

    Args:
        pool_descriptors: (n, d) descriptors of the unlabelled pool.
        labelled_descriptors: (m, d) descriptors of the labelled set, or None / (0, d) for a cold start.
        k: images to choose.
    """
    pool = np.asarray(pool_descriptors, dtype=np.float64)
    _check_count(len(pool), k)
    chosen: list[int] = []
    if k == 0:
        return chosen
    if labelled_descriptors is None or len(labelled_descriptors) == 0:
        first = int(np.argmin(np.linalg.norm(pool - pool.mean(axis=0), axis=1)))
        chosen.append(first)
        nearest = np.linalg.norm(pool - pool[first], axis=1)
    else:
        labelled = np.asarray(labelled_descriptors, dtype=np.float64)
        nearest = np.sqrt(((pool[:, None, :] - labelled[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    while len(chosen) < k:
        distances = nearest.copy()
        distances[chosen] = -np.inf
        best = int(np.argmax(distances))
        chosen.append(best)
        nearest = np.minimum(nearest, np.linalg.norm(pool - pool[best], axis=1))
    return chosen


def _uncertain_candidates(uncertainty: FloatArray, descriptors: FloatArray, K: int, k: int) -> list[int]:
    """The min(K, n) most uncertain pool positions, most uncertain first, after checking the arguments."""
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    if uncertainty.ndim != 1 or np.asarray(descriptors).ndim != 2:
        raise ValueError("uncertainty must be (n,) and descriptors (n, d)")
    if len(descriptors) != len(uncertainty):
        raise ValueError(f"{len(uncertainty)} uncertainties but {len(descriptors)} descriptors")
    if k > K:
        raise ValueError(f"k ({k}) must not exceed K ({K})")
    _check_count(len(uncertainty), k)
    return select_top_scores(uncertainty, min(K, len(uncertainty)))
