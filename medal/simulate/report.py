"""Writing a simulation's results: results.json and curve.png."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from medal.simulate.loop import RoundResult

__all__ = ["write_curve", "write_results"]


def write_results(path: Path, rounds: Sequence[RoundResult], metadata: dict[str, Any]) -> None:
    """results.json: ``metadata`` keys plus ``rounds``, one object per round."""
    document = {**metadata, "rounds": [asdict(result) for result in rounds]}
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_curve(path: Path, rounds: Sequence[RoundResult], title: str) -> None:
    """curve.png: mean IoU and mean F1 over foreground classes against the fraction of labels."""
    figure, axes = plt.subplots(figsize=(6, 4), dpi=110)
    fractions = [100 * result.fraction for result in rounds]
    axes.plot(fractions, [result.miou for result in rounds], marker="o", label="mIoU (foreground)")
    axes.plot(fractions, [result.f1 for result in rounds], marker="s", label="mean F1 (Dice)")
    axes.set_xlabel("labelled images (% of the training pool)")
    axes.set_ylabel("score on the evaluation split")
    axes.set_ylim(0, 1)
    axes.set_xlim(0, 100)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
