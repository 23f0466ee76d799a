"""Smoke runs of `medal simulate` at tiny size, and its bad-input errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from medal.simulate.cli import register
from tests.engine.conftest import write_synthetic_dataset

TINY = ["--size", "32", "--width", "0.0625", "--epochs", "2", "--patience", "1", "--min-epoch-images", "8",
        "--committee", "2", "--quiet"]  # fmt: skip


def simulate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="medal")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate", *argv])
    return int(args.func(args))


@pytest.mark.parametrize("strategy", ["suggestive", "suggestive-coverage", "coreset", "bald"])
def test_simulate_on_real_slices_writes_results(real_subset: Path, tmp_path: Path, strategy: str) -> None:
    out = tmp_path / "out"
    argv = ["--data", str(real_subset), "--strategy", strategy, "--initial", "4", "--K", "6", "--k", "4"]
    assert simulate([*argv, "--rounds", "2", "--out", str(out), *TINY]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["labels"] for r in results["rounds"]] == [4, 8]
    first = results["rounds"][0]
    assert first["fraction"] == pytest.approx(4 / 12)
    assert set(first["iou_per_class"]) == {"ground_glass", "consolidation"}
    assert 0 <= first["miou"] <= 1 and 0 <= first["f1"] <= 1
    assert first["train_seconds"] > 0 and first["query_seconds"] > 0
    assert len(set(first["queried_ids"]) | set(first["labelled_ids"])) == 8  # the queried images were new
    assert (out / "curve.png").stat().st_size > 0


def test_simulate_full_and_cold_start_coreset_without_test_split(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "data", {"train": 14}, rgb=True)
    out = tmp_path / "out"
    argv = ["--data", str(root), "--strategy", "random", "--initial", "3", "--k", "3", "--K", "3"]
    assert simulate([*argv, "--initial-strategy", "coreset", "--out", str(out), *TINY]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["evaluation_held_out_from_train"] is True
    assert [r["labels"] for r in results["rounds"]] == [3, 6, 9, 10]  # to 100% of the 10-image pool
    assert simulate(["--data", str(root), "--strategy", "full", "--out", str(tmp_path / "full"), *TINY]) == 0
    full = json.loads((tmp_path / "full" / "results.json").read_text())
    assert [r["fraction"] for r in full["rounds"]] == [1.0]


def test_simulate_is_deterministic(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "data", {"train": 8, "test": 2})
    argv = ["--data", str(root), "--strategy", "uncertainty", "--initial", "3", "--K", "4", "--k", "2", *TINY]
    assert simulate([*argv, "--rounds", "2", "--out", str(tmp_path / "a")]) == 0
    assert simulate([*argv, "--rounds", "2", "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / name / "results.json").read_text())["rounds"] for name in "ab")
    assert [(r["labelled_ids"], r["miou"]) for r in a] == [(r["labelled_ids"], r["miou"]) for r in b]


def test_bad_input_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_synthetic_dataset(tmp_path / "data", {"train": 6, "test": 2})
    out = str(tmp_path / "out")
    assert simulate(["--data", str(root), "--strategy", "random", "--initial", "4", "--k", "4", "--out", out]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "has 6 images, too few for --initial 4 plus one batch of --k 4" in error
    (root / "masks" / "test" / "1.png").unlink()
    assert simulate(["--data", str(root), "--strategy", "random", "--out", out]) == 2
    assert "missing mask" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_warm_start_and_entropy_run(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path / "data", {"train": 8, "test": 2})
    argv = ["--data", str(root), "--strategy", "entropy", "--initial", "3", "--K", "4", "--k", "2", *TINY]
    assert simulate([*argv, "--rounds", "2", "--warm-start", "--out", str(tmp_path / "w")]) == 0
    results = json.loads((tmp_path / "w" / "results.json").read_text())
    assert results["config"]["warm_start"] is True
    assert [r["labels"] for r in results["rounds"]] == [3, 5]
