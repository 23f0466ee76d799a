"""Training and scoring throughput of the FCN, its FLOPs, and this machine's fp32 matmul peak.

    python bench/al_efficiency/throughput.py --size 96 --width 0.25 --fusion-stride 1 2 4

Prints one JSON object per configuration (and writes them with --json PATH).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from medal.model.device import ComputeDevice, select_device
from services.query.scoring import score_pool
from services.trainer.augment import augment_batch
from services.trainer.training import TrainingConfig, build_model, segmentation_loss


def matmul_peak(compute: ComputeDevice, size: int = 2048, repeats: int = 10) -> float:
    """Achieved FLOP/s of a large square fp32 torch.mm (the practical peak of this device)."""
    a = torch.randn(size, size, device=compute.device)
    b = torch.randn(size, size, device=compute.device)
    for _ in range(2):
        torch.mm(a, b)
    if compute.is_cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    if compute.is_cuda:
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def _sync(compute: ComputeDevice) -> None:
    if compute.is_cuda:
        torch.cuda.synchronize()


def measure(
    compute: ComputeDevice, size: int, width: float, fusion_stride: int, batch: int, steps: int
) -> dict[str, Any]:
    """Train-step and scoring throughput and FLOPs of one FCN configuration."""
    config = TrainingConfig(width=width, fusion_stride=fusion_stride, batch_size=batch)
    model = build_model(1, 3, config).to(compute.device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_function = segmentation_loss()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 1, size, size, device=compute.device)
    masks = torch.randint(0, 3, (batch, size, size), device=compute.device)
    scaler = torch.amp.GradScaler(compute.device.type, enabled=compute.mixed_precision)

    def train_step() -> None:
        batch_images, batch_masks = augment_batch(images, masks, generator)
        optimiser.zero_grad(set_to_none=True)
        with compute.autocast():
            logits, _ = model(batch_images)
        loss = loss_function(logits.float(), batch_masks[:, None])
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()

    model.train()
    with FlopCounterMode(display=False) as counter:
        train_step()
    train_flops = counter.get_total_flops() / batch
    for _ in range(2):
        train_step()
    _sync(compute)
    started = time.perf_counter()
    for _ in range(steps):
        train_step()
    _sync(compute)
    train_seconds = time.perf_counter() - started

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    score_flops = counter.get_total_flops() / batch
    pool = torch.rand(batch * steps, 1, size, size)
    score_pool([model], pool[: batch * 2], compute, batch_size=batch)
    started = time.perf_counter()
    score_pool([model], pool, compute, batch_size=batch)
    _sync(compute)
    score_seconds = time.perf_counter() - started
    train_rate = batch * steps / train_seconds
    score_rate = batch * steps / score_seconds
    return {
        "size": size,
        "width": width,
        "fusion_stride": fusion_stride,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_gflop_per_image": train_flops / 1e9,
        "train_images_per_second": train_rate,
        "train_gflops_achieved": train_flops * train_rate / 1e9,
        "score_gflop_per_image": score_flops / 1e9,
        "score_images_per_second_per_member": score_rate,
        "score_gflops_achieved": score_flops * score_rate / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs="+", default=[96])
    parser.add_argument("--width", type=float, nargs="+", default=[0.25])
    parser.add_argument("--fusion-stride", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    compute = select_device()
    peak = matmul_peak(compute)
    machine = {
        "device": str(compute.device),
        "gpu": torch.cuda.get_device_name() if compute.is_cuda else None,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "matmul_peak_gflops": peak / 1e9,
    }
    print(json.dumps(machine))
    rows = []
    for size in args.size:
        for width in args.width:
            for stride in args.fusion_stride:
                row = measure(compute, size, width, stride, args.batch, args.steps)
                row["train_fraction_of_peak"] = row["train_gflops_achieved"] * 1e9 / peak
                row["score_fraction_of_peak"] = row["score_gflops_achieved"] * 1e9 / peak
                rows.append(row)
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "configurations": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
