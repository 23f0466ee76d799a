"""The active-learning loop of docs/design.md §1, with the ground-truth masks as the annotator.

Each round trains a committee on the labelled set, evaluates the members' mean prediction on the
evaluation split, then scores the unlabelled pool and queries the next batch with the strategy.
Strategy ``full`` trains once on the whole training pool (the reference).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from medal.model.device import ComputeDevice, seed_everything
from medal.simulate.dataset import LabelledImages, SegmentationDataset, check_budget
from medal.simulate.metrics import segmentation_scores
from services.query.scoring import bald_scores, encoder_descriptors, score_pool
from services.query.selection import (
    STRATEGIES,
    select_coreset,
    select_random,
    select_suggestive,
    select_suggestive_coverage,
    select_top_scores,
)
from services.trainer.committee import train_committee
from services.trainer.training import TrainedMember, TrainingConfig, build_model

__all__ = ["COLD_START_STRATEGIES", "RoundResult", "SimulationConfig", "planned_rounds", "run_simulation"]

COLD_START_STRATEGIES = ("random", "coreset")
FULL_DATA = "full"


@dataclass(frozen=True)
class SimulationConfig:
    """One simulated labelling campaign. ``rounds`` None: until the whole pool is labelled."""

    strategy: str
    initial: int = 8
    K: int = 16
    k: int = 8
    rounds: int | None = None
    committee: int = 4
    seed: int = 0
    initial_strategy: str = "random"
    warm_start: bool = False
    bald_passes: int = 8
    score_batch_size: int = 16
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if self.strategy != FULL_DATA and self.strategy not in STRATEGIES:
            known = ", ".join([*STRATEGIES, FULL_DATA])
            raise ValueError(f"unknown strategy {self.strategy!r} (known: {known})")
        if self.initial_strategy not in COLD_START_STRATEGIES:
            raise ValueError(f"initial strategy must be one of {COLD_START_STRATEGIES}, got {self.initial_strategy!r}")
        if self.committee < 1 or (self.rounds is not None and self.rounds < 1):
            raise ValueError("committee and rounds must be positive")
        if STRATEGIES.get(self.strategy) == "uncertainty" and self.committee < 2:
            raise ValueError(f"{self.strategy} needs a committee of at least 2 (uncertainty is the members' variance)")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RoundResult:
    """What one round achieved. ``query_seconds``: scoring + selecting the batch added after this round."""

    round: int
    labels: int
    fraction: float
    miou: float
    f1: float
    iou_per_class: dict[str, float]
    f1_per_class: dict[str, float]
    train_seconds: float
    eval_seconds: float
    query_seconds: float
    member_epochs: list[int]
    labelled_ids: list[str]
    queried_ids: list[str]


def planned_rounds(pool_size: int, config: SimulationConfig) -> int:
    """Rounds the loop will run on a training pool of ``pool_size`` images."""
    if config.strategy == FULL_DATA:
        return 1
    until_full = 1 + math.ceil(max(0, pool_size - config.initial) / config.k)
    return until_full if config.rounds is None else min(config.rounds, until_full)


def _cold_start(train: LabelledImages, config: SimulationConfig, compute: ComputeDevice) -> list[int]:
    if config.initial_strategy == "random":
        return select_random(len(train), config.initial, np.random.default_rng([config.seed, 0]))
    seed_everything(config.seed)
    encoder = build_model(train.images.shape[1], 2, config.training).to(compute.device)
    descriptors = encoder_descriptors(encoder, train.images, compute, config.score_batch_size)
    return select_coreset(descriptors, None, config.initial)


def _query(
    members: list[TrainedMember],
    train: LabelledImages,
    labelled: list[int],
    config: SimulationConfig,
    compute: ComputeDevice,
    round_index: int,
) -> list[int]:
    """Pool rows (of ``train``) to label next."""
    already = set(labelled)
    pool = [row for row in range(len(train)) if row not in already]
    count = min(config.k, len(pool))
    models = [member.model for member in members]
    pool_images = train.images[pool]
    strategy = config.strategy
    if strategy == "random":
        chosen = select_random(len(pool), count, np.random.default_rng([config.seed, round_index + 1]))
    elif strategy == "bald":
        scores = bald_scores(models[0], pool_images, compute, config.bald_passes, config.score_batch_size, config.seed)
        chosen = select_top_scores(scores, count)
    else:
        scored = score_pool(models, pool_images, compute, config.score_batch_size)
        if strategy == "suggestive":
            chosen = select_suggestive(scored.uncertainty, scored.descriptors, max(config.K, count), count)
        elif strategy == "suggestive-coverage":
            chosen = select_suggestive_coverage(scored.uncertainty, scored.descriptors, max(config.K, count), count)
        elif strategy == "uncertainty":
            chosen = select_top_scores(scored.uncertainty, count)
        elif strategy == "entropy":
            chosen = select_top_scores(scored.entropy, count)
        else:  # coreset
            labelled_scores = score_pool(models, train.images[labelled], compute, config.score_batch_size)
            chosen = select_coreset(scored.descriptors, labelled_scores.descriptors, count)
    return [pool[position] for position in chosen]


def run_simulation(
    dataset: SegmentationDataset,
    config: SimulationConfig,
    compute: ComputeDevice,
    on_round: Callable[[RoundResult], None] | None = None,
) -> list[RoundResult]:
    """Run the loop and return one result per round (``on_round`` is called after each)."""
    train = dataset.train
    if config.strategy == FULL_DATA:
        if len(train) < 2:
            raise ValueError(f"the training pool has {len(train)} images; training needs at least 2")
        labelled = list(range(len(train)))
    else:
        check_budget(len(train), config.initial, config.K, config.k)
        labelled = _cold_start(train, config, compute)
    total_rounds = planned_rounds(len(train), config)
    results: list[RoundResult] = []
    warm_states = None
    for round_index in range(total_rounds):
        started = time.perf_counter()
        labelled_set = train.subset(np.array(labelled))
        members = train_committee(
            labelled_set.images,
            labelled_set.masks,
            dataset.num_classes,
            config.training,
            compute,
            members=config.committee,
            seed=config.seed * 1000 + round_index,
            warm_states=warm_states,
        )
        train_seconds = time.perf_counter() - started

        started = time.perf_counter()
        evaluation = score_pool([m.model for m in members], dataset.test.images, compute, config.score_batch_size)
        scores = segmentation_scores(dataset.test.masks.numpy(), evaluation.mean_prediction, dataset.class_names)
        eval_seconds = time.perf_counter() - started

        started = time.perf_counter()
        last = round_index == total_rounds - 1 or len(labelled) == len(train)
        queried = [] if last else _query(members, train, labelled, config, compute, round_index)
        query_seconds = time.perf_counter() - started

        result = RoundResult(
            round=round_index,
            labels=len(labelled),
            fraction=len(labelled) / len(train),
            miou=scores.mean_iou,
            f1=scores.mean_f1,
            iou_per_class=scores.iou,
            f1_per_class=scores.f1,
            train_seconds=train_seconds,
            eval_seconds=eval_seconds,
            query_seconds=query_seconds,
            member_epochs=[m.epochs for m in members],
            labelled_ids=[train.ids[row] for row in labelled],
            queried_ids=[train.ids[row] for row in queried],
        )
        results.append(result)
        if on_round is not None:
            on_round(result)
        if config.warm_start:
            warm_states = [{k: v.detach().clone() for k, v in m.model.state_dict().items()} for m in members]
        labelled = labelled + queried
        if last:
            break
        del members
    return results
