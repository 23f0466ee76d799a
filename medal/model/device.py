"""Where the learning code runs: CUDA with mixed precision when present, else the CPU with all its threads."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ComputeDevice", "seed_everything", "select_device"]


@dataclass(frozen=True)
class ComputeDevice:
    """The torch device and whether automatic mixed precision (float16 autocast) is on."""

    device: torch.device
    mixed_precision: bool

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self) -> torch.autocast:
        """An autocast context: float16 on CUDA when mixed precision is on, a no-op otherwise."""
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.mixed_precision)


def select_device(prefer: str = "auto", threads: int | None = None) -> ComputeDevice:
    """Pick CUDA (with mixed precision) when available and not refused, else the CPU with all threads.

    Args:
        prefer: "auto", "cuda" or "cpu".
        threads: CPU threads for torch; default all CPUs this process may use.
    """
    if prefer not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be auto, cuda or cpu, got {prefer!r}")
    if prefer == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but torch sees no CUDA device")
    if prefer != "cpu" and torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        return ComputeDevice(torch.device("cuda"), mixed_precision=True)
    torch.set_num_threads(threads or available_cpus())
    return ComputeDevice(torch.device("cpu"), mixed_precision=False)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
