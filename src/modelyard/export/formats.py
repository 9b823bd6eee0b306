"""The export formats as a table: name -> backend module, file suffix, the runtime that checks
its artifacts, and its variants (precision, fixed or dynamic batch). Adding a format is one
entry here and one backend module; the tests run over this table.

A backend module (``modelyard.export.onnx`` ...) provides::

    export(model: ExportModel, variants, folder: Path, int8: Int8) -> dict[str, Path]
    open_runtime(path: Path, outputs, threads: int) -> Runner  # or RuntimeUnavailable
    describe(path: Path) -> dict  # the artifact's inputs and outputs, as stored

It is imported only by the process that exports that format (``load``): TensorFlow and
coremltools must not share a process with another format's exporter.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from modelyard.config import pick
from modelyard.errors import ConfigError
from modelyard.export.config import check_int8_scheme


@dataclass(frozen=True, kw_only=True)
class Variant:
    name: str  # the artifact's file stem
    precision: str  # fp32 | fp16 | int8
    dynamic_batch: bool = False


@dataclass(frozen=True, kw_only=True)
class Int8:
    """How a backend makes its int8 variants (params.yaml ``export.int8_scheme``).

    - ``dynamic``: weights int8 per channel; each call quantises its activations from their
      own range, so nothing is calibrated and no input can fall outside a fixed range.
    - ``static``: activations' ranges are fixed beforehand from ``calibration`` (N x 3 x S x S
      images, as the model takes them), so each call skips measuring them. On RT-DETRv2
      static int8 fails parity where dynamic holds it (README, export).
    """

    scheme: str = "dynamic"
    calibration: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 1, 1), np.float32))

    def __post_init__(self) -> None:
        check_int8_scheme(self.scheme)
        if self.scheme == "static" and not len(self.calibration):
            raise ConfigError(
                "export.int8_scheme static needs calibration images; "
                "set export.calibration_images to 1 or more"
            )


@dataclass(frozen=True, kw_only=True)
class Format:
    name: str
    backend: str
    suffix: str
    runtime: str
    variants: tuple[Variant, ...]
    primary: str  # the variant a device gets by default (the registry row's path for the format)
    layout: str = "NCHW"  # the input's axis order in the artifact

    def load(self) -> ModuleType:
        return importlib.import_module(self.backend)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            name="onnx",
            backend="modelyard.export.onnx",
            suffix=".onnx",
            runtime="onnxruntime",
            variants=(
                Variant(name="model", precision="fp32"),
                Variant(name="model_dynamic_batch", precision="fp32", dynamic_batch=True),
            ),
            primary="model",
        ),
        Format(
            name="tflite",
            backend="modelyard.export.tflite",
            suffix=".tflite",
            runtime="ai-edge-litert",
            variants=(
                Variant(name="model_fp32", precision="fp32"),
                Variant(name="model_fp16", precision="fp16"),
                Variant(name="model_int8", precision="int8"),
            ),
            primary="model_fp16",  # half the size of fp32, the same detections (see parity)
            layout="NHWC",
        ),
        Format(
            name="coreml",
            backend="modelyard.export.coreml",
            suffix=".mlpackage.zip",  # one file: the package folder zipped reproducibly
            runtime="coremltools",
            variants=(Variant(name="model", precision="fp16"),),
            primary="model",
        ),
    )
}


def names() -> list[str]:
    return sorted(FORMATS)


def get(name: str) -> Format:
    """The format called ``name``; an unknown name is an error listing the valid ones."""
    return pick(FORMATS, name, "export format")
