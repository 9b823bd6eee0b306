"""Known harmless output of the libraries a stage runs, kept off the console so that what the
stage itself says (and any real warning) can be read.

Each entry is a specific message, seen on every run and understood:

- the TorchScript tracer's notes on exporting this project's models (a Python bool or
  number taken from a tensor; a ``torch.tensor`` recorded as a constant; ``len`` of or
  iterating over a tensor). Each site in the model code takes a value that is fixed for a
  fixed input size, and parity checks every exported artifact against PyTorch anyway;
- ``torch.onnx``'s notice that the TorchScript exporter will be removed. It is deliberate: its
  dynamo exporter fails on RT-DETRv2 (docs/export.md);
- Lightning's banners (``GPU available``, ``TPU available``, the LitLogger tip), its own
  deprecation note about ``LeafSpec`` and its note that the checkpoint folder is not empty
  (training empties it unless it resumes, then writes its ``run.json`` there); absl's INFO
  lines (ai-edge-quantizer's progress);
- TensorFlow's start-up INFO lines (``TF_CPP_MIN_LOG_LEVEL=1``: its warnings and errors stay);
- what the TFLite converters print on standard output (onnx2tf's SavedModel listing, one
  line per captured tensor; the quantizer's size report): ``printed_to`` sends it to a log
  file beside the artifacts instead;
- coremltools' notes off macOS (it cannot load its ``_ML...Proxy`` runtime classes, which
  exist only on macOS, and the torch, TensorFlow and scikit-learn versions it has not been
  tested with: the export's parity check is what tells whether the conversion is right), its
  note that a tuple of outputs is flattened (the outputs are named), and what tracing for it
  sets off: torch's deprecation of ``torch.jit.trace`` and transformers' notes on the
  properties the tracer reads;
- TensorFlow's absl start-up lines (oneDNN, CUDA, CPU features), which its C++ writes to
  the process's standard error before it reads ``TF_CPP_MIN_LOG_LEVEL``: ``import_quietly``
  sends what native code writes while a module is imported to the converter's log.

Any other warning is shown as before.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
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
    # training empties its checkpoint folder unless it resumes, then writes its run.json there
    (r"Checkpoint directory .* exists and is not empty", Warning),
    # coremltools converts a TorchScript trace, which torch now calls deprecated; tracing a
    # transformers model touches its deprecated ``is_gradient_checkpointing`` alias
    (r"`torch\.jit\.trace(_method)?` is deprecated", FutureWarning),
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning),
)
CONVERTER_LOG = "converter.log"  # beside a format's artifacts: what its converters wrote
QUIET_LOGGERS = (  # their INFO lines
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "absl",  # ai-edge-quantizer's "Serializing model..."
)
HARMLESS_LOGS: dict[str, tuple[str, ...]] = {  # logger -> message regexes
    "coremltools": (
        r"Failed to load '?_ML\w*Proxy",
        r"\w+ version \S+ has not been tested with coremltools",
        r"scikit-learn version \S+ is not supported",
        r"Tuple detected at graph output\. This will be flattened",
    ),
    # the tracer reads every property of a transformers model, its loss function among them
    "transformers.modeling_utils": (r"`loss_type=None` was set in the config but it is unrec",),
}


class _Unless(logging.Filter):
    """Drops the records whose message matches one of ``patterns``."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.match(record.getMessage())


def install() -> None:
    """Hide the known harmless messages in this process (and TensorFlow's INFO lines in it
    and its children); call it before the libraries are imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    for message, category in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name, patterns in HARMLESS_LOGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Unless) for f in logger.filters):
            logger.addFilter(_Unless(patterns))


@contextlib.contextmanager
def printed_to(path: Path) -> Iterator[None]:
    """What Python code prints inside the block, on standard output or standard error (the
    converters' listings and progress bars), goes to ``path`` (appended), not the console.
    Logging still reaches the console, and so do warnings: they are logged meanwhile
    (``py.warnings``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        path.open("a", encoding="utf-8") as sink,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        logging.captureWarnings(True)
        try:
            yield
        finally:
            logging.captureWarnings(False)


def import_quietly(module: str, log: Path) -> None:
    """Import ``module`` (if it is not yet) with what native code writes to standard error
    meanwhile appended to ``log``; a failed import's error is raised as usual."""
    if module in sys.modules:
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with log.open("ab") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                importlib.import_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
