"""Label efficiency of the query strategies: strategies x seeds, from the initial set to 100% of the pool.

    python bench/al_efficiency/run.py --data ../shared/data/covid19-ct-seg --out docs \
        --size 64 --width 0.25 --fusion-stride 2 --epochs 20 --patience 6 --workers 2

Every (strategy, seed) is one `medal simulate` run (run_simulation in-process, one per worker process,
torch threads split between workers); each run's results.json goes to --work and a finished run is
not redone, so an interrupted benchmark resumes. At the end it writes, under --out:
al_efficiency.json (config, machine, throughput, per-strategy curves), al_efficiency_table.md and
al_efficiency.png. On a GPU pass --size 512 --width 1 --fusion-stride 1 --workers 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.al_efficiency.throughput import matmul_peak, measure
from medal.model.device import available_cpus, select_device
from medal.simulate.dataset import load_dataset
from medal.simulate.loop import SimulationConfig, run_simulation
from medal.simulate.report import write_results
from services.trainer.training import TrainingConfig

MAIN_STRATEGIES = ["suggestive", "suggestive-coverage", "random", "uncertainty"]
OTHER_STRATEGIES = ["entropy", "bald", "coreset"]


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One simulation in a worker process; returns its results document."""
    compute = select_device(job["device"], threads=job["threads"])
    dataset = load_dataset(job["data"], job["size"], seed=job["seed"])
    training = TrainingConfig(**job["training"])
    config = SimulationConfig(
        strategy=job["strategy"],
        initial=job["initial"],
        K=job["K"],
        k=job["k"],
        committee=job["committee"],
        seed=job["seed"],
        training=training,
    )
    started = time.perf_counter()
    rounds = run_simulation(dataset, config, compute)
    path = Path(job["result_path"])
    metadata = {"strategy": job["strategy"], "seed": job["seed"], "seconds": time.perf_counter() - started}
    write_results(path, rounds, {**metadata, "config": config.to_json(), "train_pool": len(dataset.train)})
    return json.loads(path.read_text())


def jobs_in_order(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The reference, then the main strategies seed by seed, then the others (seed 0).

    A benchmark cut short still has the comparison the targets are about, with its spread.
    """
    pairs = [("full", seed) for seed in range(args.seeds)]
    pairs += [(strategy, seed) for seed in range(args.seeds) for strategy in args.strategies]
    pairs += [(strategy, 0) for strategy in args.other_strategies]
    training = {
        "width": args.width,
        "fusion_stride": args.fusion_stride,
        "max_epochs": args.epochs,
        "patience": args.patience,
        "min_epoch_images": args.min_epoch_images,
        "batch_size": args.batch_size,
    }
    threads = max(1, args.threads // args.workers)
    return [
        {
            "strategy": strategy,
            "seed": seed,
            "data": str(args.data),
            "size": args.size,
            "initial": args.initial,
            "K": args.K,
            "k": args.k,
            "committee": args.committee,
            "training": training,
            "device": args.device,
            "threads": threads,
            "result_path": str(args.work / f"{strategy}_seed{seed}.json"),
        }
        for strategy, seed in pairs
    ]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per strategy: labels -> mIoU/F1 mean and sd over seeds, and time per run."""
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_strategy.setdefault(run["strategy"], []).append(run)
    summary: dict[str, Any] = {}
    for strategy, strategy_runs in sorted(by_strategy.items()):
        points: dict[int, dict[str, list[float]]] = {}
        for run in strategy_runs:
            for result in run["rounds"]:
                point = points.setdefault(result["labels"], {"miou": [], "f1": [], "fraction": []})
                point["miou"].append(result["miou"])
                point["f1"].append(result["f1"])
                point["fraction"].append(result["fraction"])
        summary[strategy] = {
            "seeds": sorted(run["seed"] for run in strategy_runs),
            "seconds_per_run": float(np.mean([run["seconds"] for run in strategy_runs])),
            "curve": [
                {
                    "labels": labels,
                    "fraction": float(np.mean(point["fraction"])),
                    "miou_mean": float(np.mean(point["miou"])),
                    "miou_sd": float(np.std(point["miou"], ddof=1)) if len(point["miou"]) > 1 else 0.0,
                    "f1_mean": float(np.mean(point["f1"])),
                    "runs": len(point["miou"]),
                }
                for labels, point in sorted(points.items())
            ],
        }
    return summary


def table(summary: dict[str, Any]) -> str:
    """Markdown: one row per label budget, one column per strategy (mIoU mean ± sd, n seeds)."""
    strategies = [s for s in [*MAIN_STRATEGIES, *OTHER_STRATEGIES] if s in summary]
    budgets = sorted({point["labels"] for s in strategies for point in summary[s]["curve"]})
    lines = [
        "| labels (% of pool) | " + " | ".join(f"{s} (n={len(summary[s]['seeds'])})" for s in strategies) + " |",
        "|---" * (len(strategies) + 1) + "|",
    ]
    for labels in budgets:
        cells = []
        fraction = 0.0
        for strategy in strategies:
            point = next((p for p in summary[strategy]["curve"] if p["labels"] == labels), None)
            if point is None:
                cells.append("")
                continue
            fraction = point["fraction"]
            cells.append(f"{point['miou_mean']:.3f} ± {point['miou_sd']:.3f}")
        lines.append(f"| {labels} ({100 * fraction:.0f}%) | " + " | ".join(cells) + " |")
    if "full" in summary:
        full = summary["full"]["curve"][0]
        lines.append("")
        lines.append(
            f"Full-data reference (all {full['labels']} labels, n={full['runs']}): "
            f"mIoU {full['miou_mean']:.3f} ± {full['miou_sd']:.3f}; 97% of it is {0.97 * full['miou_mean']:.3f}."
        )
    return "\n".join(lines) + "\n"


def targets(summary: dict[str, Any]) -> str:
    """Markdown: the targets of the issue, checked on the mean curves."""
    if "full" not in summary:
        return "No full-data reference run: targets not checked.\n"
    goal = 0.97 * summary["full"]["curve"][0]["miou_mean"]
    lines = []
    for strategy in [s for s in [*MAIN_STRATEGIES, *OTHER_STRATEGIES] if s in summary]:
        reached = [p for p in summary[strategy]["curve"] if p["miou_mean"] >= goal]
        first = f"first reached with {100 * reached[0]['fraction']:.0f}% of the labels" if reached else "never reached"
        lines.append(f"- {strategy}: 97% of the full-data mIoU ({goal:.3f}) {first}")
    if "suggestive" in summary:
        mine = {p["labels"]: p["miou_mean"] for p in summary["suggestive"]["curve"]}
        for rival in ("random", "uncertainty"):
            if rival not in summary:
                continue
            theirs = {p["labels"]: p["miou_mean"] for p in summary[rival]["curve"]}
            # The first budget is the same initial set for every strategy and the last is the whole pool.
            budgets = sorted(set(mine) & set(theirs))[1:-1]
            wins = sum(mine[b] > theirs[b] for b in budgets)
            lines.append(f"- suggestive beats {rival} at {wins} of {len(budgets)} intermediate budgets")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path, title: str) -> None:
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for strategy in [s for s in [*MAIN_STRATEGIES, *OTHER_STRATEGIES] if s in summary]:
        curve = summary[strategy]["curve"]
        x = np.array([100 * p["fraction"] for p in curve])
        y = np.array([p["miou_mean"] for p in curve])
        sd = np.array([p["miou_sd"] for p in curve])
        axes.plot(x, y, marker="o", markersize=3, label=f"{strategy} (n={len(summary[strategy]['seeds'])})")
        axes.fill_between(x, y - sd, y + sd, alpha=0.12)
    if "full" in summary:
        full = summary["full"]["curve"][0]["miou_mean"]
        axes.axhline(full, color="black", linestyle="--", linewidth=1, label="full data")
        axes.axhline(0.97 * full, color="grey", linestyle=":", linewidth=1, label="97% of full")
    axes.set_xlabel("labelled images (% of the training pool)")
    axes.set_ylabel("test mIoU (foreground classes)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/covid19-ct-seg"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/medal_al_efficiency"))
    parser.add_argument("--strategies", nargs="+", default=MAIN_STRATEGIES)
    parser.add_argument("--other-strategies", nargs="*", default=OTHER_STRATEGIES)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--fusion-stride", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--min-epoch-images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--committee", type=int, default=4)
    parser.add_argument("--initial", type=int, default=8)
    parser.add_argument("--K", dest="K", type=int, default=16)
    parser.add_argument("--k", dest="k", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=available_cpus())
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--summarise-only", action="store_true", help="only summarise the finished runs")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    compute = select_device(args.device, threads=args.threads)
    machine = {
        "platform": platform.platform(),
        "cpus": available_cpus(),
        "gpu": None,
        "matmul_peak_gflops": matmul_peak(compute) / 1e9,
    }
    if compute.is_cuda:
        import torch

        machine["gpu"] = torch.cuda.get_device_name()
    throughput = measure(compute, args.size, args.width, args.fusion_stride, args.batch_size, steps=10)
    throughput["train_fraction_of_peak"] = throughput["train_gflops_achieved"] / machine["matmul_peak_gflops"]
    throughput["score_fraction_of_peak"] = throughput["score_gflops_achieved"] / machine["matmul_peak_gflops"]
    print(json.dumps({"machine": machine, "throughput": throughput}), flush=True)

    jobs = jobs_in_order(args)
    runs = [json.loads(Path(j["result_path"]).read_text()) for j in jobs if Path(j["result_path"]).is_file()]
    pending = [] if args.summarise_only else [j for j in jobs if not Path(j["result_path"]).is_file()]
    print(f"{len(runs)} runs already done, {len(pending)} to run", flush=True)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {pool.submit(run_one, job): job for job in pending}
        for future in as_completed(futures):
            job, run = futures[future], future.result()
            runs.append(run)
            final = run["rounds"][-1]
            elapsed = time.perf_counter() - started
            print(
                f"[{elapsed:7.0f}s] {job['strategy']} seed {job['seed']}: {len(run['rounds'])} rounds, "
                f"final mIoU {final['miou']:.3f}, {run['seconds']:.0f}s",
                flush=True,
            )

    summary = summarise(runs)
    document = {
        "command": " ".join(sys.argv),
        "machine": machine,
        "throughput": throughput,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "wall_seconds": time.perf_counter() - started,
        "strategies": summary,
    }
    (args.out / "al_efficiency.json").write_text(json.dumps(document, indent=2) + "\n")
    (args.out / "al_efficiency_table.md").write_text(table(summary) + "\n" + targets(summary))
    title = (
        f"covid19-ct-seg, {args.size}px, width {args.width}, M={args.committee}, "
        f"initial {args.initial}, K={args.K}, k={args.k}"
    )
    plot(summary, args.out / "al_efficiency.png", title)
    print(table(summary) + "\n" + targets(summary), flush=True)
    print(f"done in {time.perf_counter() - started:.0f}s (pid {os.getpid()})", flush=True)


if __name__ == "__main__":
    main()
