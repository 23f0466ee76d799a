"""Segmentation quality: IoU and F1 (Dice) per foreground class, pooled over all pixels of a split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["SegmentationScores", "confusion_matrix", "segmentation_scores"]


@dataclass(frozen=True)
class SegmentationScores:
    """Per-class and mean (over foreground classes) IoU and F1."""

    iou: dict[str, float]
    f1: dict[str, float]

    @property
    def mean_iou(self) -> float:
        return float(np.mean(list(self.iou.values())))

    @property
    def mean_f1(self) -> float:
        return float(np.mean(list(self.f1.values())))


def confusion_matrix(
    truth: NDArray[np.integer], prediction: NDArray[np.integer], num_classes: int
) -> NDArray[np.int64]:
    """(N, N) pixel counts, rows = true class, columns = predicted class."""
    truth = np.asarray(truth).ravel().astype(np.int64)
    prediction = np.asarray(prediction).ravel().astype(np.int64)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth has {truth.size} pixels, prediction {prediction.size}")
    counts = np.bincount(truth * num_classes + prediction, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def segmentation_scores(
    truth: NDArray[np.integer], prediction: NDArray[np.integer], class_names: tuple[str, ...]
) -> SegmentationScores:
    """IoU = TP / (TP + FP + FN) and F1 = 2TP / (2TP + FP + FN) for classes 1..N-1, over all pixels.

    Pixels of every image are pooled (a class absent from one image does not make that image's score
    undefined). A class absent from both truth and prediction scores 1.
    """
    matrix = confusion_matrix(truth, prediction, len(class_names))
    iou, f1 = {}, {}
    for index, name in enumerate(class_names[1:], start=1):
        true_positive = float(matrix[index, index])
        false_positive = float(matrix[:, index].sum()) - true_positive
        false_negative = float(matrix[index, :].sum()) - true_positive
        union = true_positive + false_positive + false_negative
        iou[name] = true_positive / union if union else 1.0
        f1[name] = 2 * true_positive / (union + true_positive) if union else 1.0
    return SegmentationScores(iou, f1)
