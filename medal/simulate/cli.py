"""The `medal simulate` sub-command: parse, check the data, run the loop, write results.json and curve.png."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from medal.model.device import select_device
from medal.simulate.dataset import DatasetError, check_budget, load_dataset
from medal.simulate.loop import (
    COLD_START_STRATEGIES,
    FULL_DATA,
    RoundResult,
    SimulationConfig,
    planned_rounds,
    run_simulation,
)
from medal.simulate.report import write_curve, write_results
from services.query.selection import STRATEGIES
from services.trainer.training import TrainingConfig

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` sub-command to the medal CLI."""
    parser = subparsers.add_parser(
        "simulate",
        help="simulate active labelling on a labelled data set (its masks answer the queries)",
        description="Run the active-learning loop with the ground-truth masks as the annotator; "
        "evaluate on the test split after each round; write results.json and curve.png.",
    )
    parser.add_argument("--data", required=True, type=Path, help="data set folder (images/<split>, masks/<split>)")
    parser.add_argument("--strategy", required=True, choices=[*STRATEGIES, FULL_DATA])
    parser.add_argument("--out", required=True, type=Path, help="folder for results.json and curve.png")
    parser.add_argument("--initial", type=int, default=8, help="labels before the first round (default 8)")
    parser.add_argument("--K", dest="K", type=int, default=16, help="uncertain candidates (default 16)")
    parser.add_argument("--k", dest="k", type=int, default=8, help="images labelled per round (default 8)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default: until the pool is labelled)")
    parser.add_argument("--committee", type=int, default=4, help="committee members M (default 4)")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels after resizing (default 96)")
    parser.add_argument("--width", type=float, default=0.25, help="FCN width multiplier (default 0.25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40, help="most epochs per member (default 40)")
    parser.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs (default 8)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--min-epoch-images", type=int, default=64, help="images shown per epoch at least")
    parser.add_argument(
        "--fusion-stride", type=int, default=2, choices=[1, 2, 4], help="fuse scales at 1/s of the size (default 2)"
    )
    parser.add_argument("--initial-strategy", default="random", choices=COLD_START_STRATEGIES)
    parser.add_argument("--warm-start", action="store_true", help="start each round from the last round's members")
    parser.add_argument("--bald-passes", type=int, default=8, help="MC-dropout passes for bald")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the sub-command; 0 on success, 2 on bad input (one line on stderr)."""
    try:
        training = TrainingConfig(
            width=args.width,
            fusion_stride=args.fusion_stride,
            max_epochs=args.epochs,
            patience=args.patience,
            batch_size=args.batch_size,
            min_epoch_images=args.min_epoch_images,
        )
        config = SimulationConfig(
            strategy=args.strategy,
            initial=args.initial,
            K=args.K,
            k=args.k,
            rounds=args.rounds,
            committee=args.committee,
            seed=args.seed,
            initial_strategy=args.initial_strategy,
            warm_start=args.warm_start,
            bald_passes=args.bald_passes,
            training=training,
        )
        if args.width <= 0:
            raise ValueError(f"--width must be positive, got {args.width}")
        dataset = load_dataset(args.data, args.size, seed=args.seed)
        if config.strategy != FULL_DATA:
            check_budget(len(dataset.train), config.initial, config.K, config.k)
    except (DatasetError, ValueError, FileNotFoundError, NotADirectoryError) as error:
        print(f"medal simulate: error: {error}", file=sys.stderr)
        return 2

    compute = select_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    total = planned_rounds(len(dataset.train), config)
    started = time.perf_counter()
    with tqdm(total=total, desc=f"{config.strategy} (seed {config.seed})", unit="round", disable=args.quiet) as bar:

        def report(result: RoundResult) -> None:
            bar.set_postfix(labels=result.labels, miou=f"{result.miou:.3f}")
            bar.update(1)

        rounds = run_simulation(dataset, config, compute, on_round=report)
    metadata = {
        "data": str(args.data),
        "classes": list(dataset.class_names),
        "train_pool": len(dataset.train),
        "evaluation_images": len(dataset.test),
        "evaluation_held_out_from_train": dataset.test_held_out_from_train,
        "size": args.size,
        "device": str(compute.device),
        "mixed_precision": compute.mixed_precision,
        "seconds": time.perf_counter() - started,
        "config": config.to_json(),
    }
    write_results(args.out / "results.json", rounds, metadata)
    write_curve(args.out / "curve.png", rounds, f"{config.strategy} on {args.data.name} (seed {config.seed})")
    final = rounds[-1]
    print(json.dumps({"labels": final.labels, "fraction": round(final.fraction, 3), "miou": round(final.miou, 4)}))
    return 0
