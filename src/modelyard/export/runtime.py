"""What every backend's runtime looks like to parity and latency: a callable that takes a
batch as the model does (N x 3 x S x S float32, NCHW) and returns its outputs in the model's
order. A runtime that takes NHWC transposes inside."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

Runner = Callable[[np.ndarray], list[np.ndarray]]

WARMUP_RUNS = 3


def torch_runner(network: torch.nn.Module) -> Runner:
    def run(images: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            out = network(torch.from_numpy(images))
        outputs = out if isinstance(out, tuple | list) else (out,)
        return [o.float().numpy() for o in outputs]

    return run


def run_batches(runner: Runner, images: np.ndarray, batch: int = 1) -> list[np.ndarray]:
    """``runner`` over ``images`` in batches; outputs concatenated along the batch axis."""
    parts = [runner(images[i : i + batch]) for i in range(0, len(images), batch)]
    return [np.concatenate(outs) for outs in zip(*parts, strict=True)]


@dataclass(frozen=True, kw_only=True)
class Latency:
    median_ms: float
    p90_ms: float
    runs: int
    threads: int


def latency(runner: Runner, image: np.ndarray, runs: int, threads: int) -> Latency:
    """Median (and 90th percentile) milliseconds of ``runs`` single-image calls."""
    for _ in range(WARMUP_RUNS):
        runner(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner(image)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return Latency(
        median_ms=round(statistics.median(times), 3),
        p90_ms=round(times[min(len(times) - 1, int(0.9 * len(times)))], 3),
        runs=runs,
        threads=threads,
    )
