"""One committee member from stored data: read the labelled set, resample, train, measure Dice.

Blocking code (decoding, training); the runner calls it off the event loop. Member m of a round
seeded s draws its bootstrap resample and seeds its training with ``member_seed(s, m)``, exactly as
services.trainer.committee.train_committee does in one process, and validates on its out-of-bag
images (docs/adr/0012-committee-bootstrap-out-of-bag.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import ValidationError

from medal.model.device import ComputeDevice
from medal.model.fcn import SuggestiveFCN
from medal.model.preprocess import IN_CHANNELS, ImageDecodeError, load_image, load_mask
from medal.model.weights import WeightsError, read_member
from medal.storage import ObjectNotFound, ObjectStore
from proto.loop import TrainingSpec
from proto.manifests import LabelledItem, LabelledSet
from services.trainer.committee import bootstrap_resample
from services.trainer.config import build_training_config
from services.trainer.training import EpochReport, build_model, train_member

__all__ = [
    "BadTrainingData",
    "LabelledTensors",
    "MemberResult",
    "load_labelled_set",
    "mean_dice",
    "train_one_member",
    "warm_start_state",
]


class BadTrainingData(ValueError):
    """The labelled set cannot be trained on (missing or unreadable manifest, image or mask).

    The text names the image id (never its contents) and says what a person can do about it.
    """


RETRY = "retry the round"
NEW_MASK = f"submit a new mask for that image and {RETRY}"


@dataclass(frozen=True)
class LabelledTensors:
    images: torch.Tensor  # (n, 1, S, S) float32
    masks: torch.Tensor  # (n, S, S) int64


@dataclass(frozen=True)
class MemberResult:
    model: SuggestiveFCN
    validation_dice: float
    validated_on_training_images: bool
    epochs: int
    best_epoch: int
    seconds: float


def read_manifest(store: ObjectStore, key: str) -> LabelledSet:
    try:
        return LabelledSet.model_validate_json(store.get(key))
    except ObjectNotFound:
        raise BadTrainingData(
            f"labelled set manifest {key} is not in object storage; {RETRY} (a retry writes a new labelled set)"
        ) from None
    except ValidationError as exc:
        raise BadTrainingData(
            f"labelled set manifest {key} is not a LabelledSet ({exc.error_count()} errors); {RETRY}"
        ) from None


def _read(store: ObjectStore, key: str, what: str, remedy: str) -> bytes:
    try:
        return store.get(key)
    except ObjectNotFound:
        raise BadTrainingData(f"{what} ({key}) is not in object storage; {remedy}") from None


def _decode_item(store: ObjectStore, item: LabelledItem, spec: TrainingSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """One (image, mask) pair, or :class:`BadTrainingData` saying which image and what is wrong."""
    reingest = f"ingest the study again or remove the image from the labelled set, then {RETRY}"
    pixels = _read(store, item.image_key, f"the pixels of image {item.image_id}", reingest)
    drawn = _read(store, item.mask_key, f"the mask of image {item.image_id}", NEW_MASK)
    try:
        image = load_image(pixels, spec.image_size, item.offset)
    except ImageDecodeError as exc:
        raise BadTrainingData(f"image {item.image_id} cannot be decoded: {exc}; {reingest}") from None
    try:
        mask = load_mask(drawn, spec.image_size)
    except ImageDecodeError as exc:
        raise BadTrainingData(f"mask of image {item.image_id} cannot be decoded: {exc}; {NEW_MASK}") from None
    if int(mask.max()) >= spec.num_classes:
        raise BadTrainingData(
            f"mask of image {item.image_id} holds class {int(mask.max())}; the project has {spec.num_classes} "
            f"classes (0 to {spec.num_classes - 1}): {NEW_MASK}"
        )
    return image, mask


def load_labelled_set(store: ObjectStore, key: str, spec: TrainingSpec) -> LabelledTensors:
    """Every (image, mask) pair of the manifest at ``key``, preprocessed to the spec's image size."""
    manifest = read_manifest(store, key)
    if not manifest.items:
        raise BadTrainingData(f"labelled set {key} has no images; label at least one image and {RETRY}")
    pairs = [_decode_item(store, item, spec) for item in manifest.items]
    return LabelledTensors(torch.stack([image for image, _ in pairs]), torch.stack([mask for _, mask in pairs]))


def warm_start_state(previous: bytes, spec: TrainingSpec, *, on_gpu: bool) -> dict[str, torch.Tensor] | None:
    """A previous member's weights when they fit the member about to be trained (same shapes), else None."""
    try:
        state = read_member(previous).state_dict
    except WeightsError:
        return None
    fresh = build_model(IN_CHANNELS, spec.num_classes, build_training_config(spec, on_gpu=on_gpu)).state_dict()
    if state.keys() != fresh.keys() or any(state[name].shape != tensor.shape for name, tensor in fresh.items()):
        return None
    return state


@torch.no_grad()
def mean_dice(
    model: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    num_classes: int,
    compute: ComputeDevice,
    batch_size: int = 16,
) -> float:
    """Dice over the foreground classes, pixels of all images pooled, averaged over classes.

    A class absent from both truth and prediction scores 1 (as medal.simulate.metrics does).
    """
    model.eval()
    counts = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(compute.device)
        with compute.autocast():
            logits, _ = model(batch)
        predicted = logits.argmax(dim=1).cpu().reshape(-1)
        truth = masks[start : start + batch_size].reshape(-1)
        counts += torch.bincount(truth * num_classes + predicted, minlength=num_classes**2).reshape(
            num_classes, num_classes
        )
    scores = []
    for cls in range(1, num_classes):
        true_positive = float(counts[cls, cls])
        union_plus_tp = float(counts[:, cls].sum() + counts[cls, :].sum())
        scores.append(2 * true_positive / union_plus_tp if union_plus_tp else 1.0)
    return float(np.mean(scores))


def train_one_member(
    data: LabelledTensors,
    spec: TrainingSpec,
    seed: int,
    compute: ComputeDevice,
    on_epoch: Callable[[EpochReport, float], None] | None = None,
    initial_state: Mapping[str, torch.Tensor] | None = None,
) -> MemberResult:
    """Train one member on its bootstrap resample; ``on_epoch(report, validation_dice)`` after each epoch.

    ``seed`` is the member's seed (services.trainer.committee.member_seed of the round seed and index).
    Without out-of-bag images (a resample that drew every image) the Dice is measured on all images.
    """
    started = time.perf_counter()
    resample, out_of_bag = bootstrap_resample(len(data.images), np.random.default_rng(seed))
    check_images, check_masks = (
        (data.images[out_of_bag], data.masks[out_of_bag]) if len(out_of_bag) else (data.images, data.masks)
    )

    def report(epoch: EpochReport) -> None:
        if on_epoch is not None:
            on_epoch(epoch, mean_dice(epoch.model, check_images, check_masks, spec.num_classes, compute))

    trained = train_member(
        data.images,
        data.masks,
        resample,
        out_of_bag,
        spec.num_classes,
        build_training_config(spec, on_gpu=compute.is_cuda),
        compute,
        seed=seed % 2**31,
        initial_state=initial_state,
        on_epoch=report,
    )
    dice = mean_dice(trained.model, check_images, check_masks, spec.num_classes, compute)
    return MemberResult(
        model=trained.model.cpu(),
        validation_dice=min(1.0, max(0.0, dice)),
        validated_on_training_images=len(out_of_bag) == 0,
        epochs=trained.epochs,
        best_epoch=trained.best_epoch,
        seconds=time.perf_counter() - started,
    )
