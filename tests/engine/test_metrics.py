"""IoU / F1 on a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest

from medal.simulate.metrics import segmentation_scores


def test_iou_and_f1_per_foreground_class() -> None:
    truth = np.array([[0, 1, 1, 2]])
    prediction = np.array([[1, 1, 0, 0]])
    scores = segmentation_scores(truth, prediction, ("bg", "a", "b"))
    # class a: TP 1, FP 1, FN 1 -> IoU 1/3, F1 2/4. class b: TP 0, FN 1 -> 0.
    assert scores.iou == {"a": pytest.approx(1 / 3), "b": 0.0}
    assert scores.f1 == {"a": pytest.approx(0.5), "b": 0.0}
    assert scores.mean_iou == pytest.approx(1 / 6)


def test_absent_class_scores_one() -> None:
    scores = segmentation_scores(np.zeros((2, 2), int), np.zeros((2, 2), int), ("bg", "a"))
    assert scores.iou == {"a": 1.0}
