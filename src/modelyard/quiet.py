"""Known harmless output of the libraries a stage runs, kept off the console so that what the
stage itself says (and any real warning) can be read.

Each entry is a specific message, seen on every run and understood:

- the TorchScript tracer's notes on exporting this project's models (a Python bool or
  number taken from a tensor; a ``torch.tensor`` recorded as a constant; ``len`` of or
  iterating over a tensor). Each site in the model code takes a value that is fixed for a
  fixed input size, and parity checks every exported artifact against PyTorch anyway;
- ``torch.onnx``'s notice that the TorchScript exporter will be removed. It is deliberate: its
  dynamo exporter fails on RT-DETRv2 (docs/export.md);
- Lightning's banners (``GPU available``, ``TPU available``, the LitLogger tip) and its own
  deprecation note about ``LeafSpec``;
- TensorFlow's start-up INFO lines (``TF_CPP_MIN_LOG_LEVEL=1``: its warnings and errors stay);
- what the TFLite converters print on standard output (onnx2tf's SavedModel listing, one
  line per captured tensor; the quantizer's size report): ``printed_to`` sends it to a log
  file beside the artifacts instead.

Any other warning is shown as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

HARMLESS_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (  # message regex, category
    # torch.jit.TracerWarning (a Warning; torch is not imported here)
    (r"Converting a tensor to a Python (boolean|number|index|integer|float)", Warning),
    (r"torch\.tensor results are registered as constants in the trace", Warning),
    (r"Iterating over a tensor might cause the trace to be incorrect", Warning),
    (r"Using len to get tensor shape might cause the trace to be incorrect", Warning),
    (r"The feature will be removed\. Please remove usage of this function", DeprecationWarning),
    (r".*isinstance\(treespec, LeafSpec\)", Warning),
)
QUIET_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def install() -> None:
    """Hide the known harmless messages in this process (and TensorFlow's INFO lines in it
    and its children); call it before the libraries are imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    for message, category in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def printed_to(path: Path) -> Iterator[None]:
    """What Python code prints inside the block goes to ``path`` (appended), not the console;
    its warnings and logging still reach the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
        yield
