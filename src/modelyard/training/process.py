"""Process-wide torch settings that a training may change (ultralytics' trainer, Lightning's
``deterministic=True``), put back when it ends so that whatever runs next in the process runs
as before."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_CUBLAS = "CUBLAS_WORKSPACE_CONFIG"


@contextmanager
def settings_kept() -> Iterator[None]:
    """torch's thread count, its deterministic mode, cuDNN's benchmark flag and cuBLAS's
    workspace setting as they were before the block."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    cublas = os.environ.get(_CUBLAS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        if cublas is None:
            os.environ.pop(_CUBLAS, None)
        else:
            os.environ[_CUBLAS] = cublas
