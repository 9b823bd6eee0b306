"""CoreML: an ``.mlpackage`` (ML program, fp16 compute) converted by coremltools from the
traced model.

``predict`` runs on macOS only. Elsewhere the artifact is checked by its spec (``describe``:
it loads, input and output names, shapes and types, the class labels in its metadata) and
its numeric parity is reported as skipped with that reason, never as passed.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision  # noqa: F401  (before coremltools, which loads TensorFlow: see tflite.py)

from modelyard.errors import RuntimeUnavailable
from modelyard.export.formats import Int8, Variant
from modelyard.export.runtime import Runner
from modelyard.export.source import INPUT_NAME, ExportModel

DEPLOYMENT_TARGET = "iOS16"


def export(
    model: ExportModel, variants: Sequence[Variant], folder: Path, int8: Int8
) -> dict[str, Path]:
    import coremltools as ct

    del int8  # fp16 only
    logging.getLogger("coremltools").setLevel(logging.WARNING)  # it logs every graph pass
    example = torch.zeros(model.input.shape)
    with torch.no_grad():
        traced = torch.jit.trace(model.network, (example,), check_trace=False)  # type: ignore[no-untyped-call]
    written = {}
    for variant in variants:
        precision = ct.precision.FLOAT16 if variant.precision == "fp16" else ct.precision.FLOAT32
        mlmodel = ct.convert(
            traced,
            inputs=[ct.TensorType(name=INPUT_NAME, shape=model.input.shape, dtype=np.float32)],
            outputs=[ct.TensorType(name=name, dtype=np.float32) for name in model.outputs],
            convert_to="mlprogram",
            compute_precision=precision,
            minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET),
        )
        mlmodel.short_description = f"modelyard {model.architecture} ({model.task})"
        mlmodel.user_defined_metadata.update(
            {
                "classes": json.dumps(list(model.classes)),
                "input": json.dumps(model.input.as_dict()),
                "architecture": model.architecture,
            }
        )
        target = folder / f"{variant.name}.mlpackage"
        folder.mkdir(parents=True, exist_ok=True)
        mlmodel.save(str(target))
        written[variant.name] = target
    return written


def open_runtime(path: Path, outputs: Sequence[str], threads: int) -> Runner:
    if sys.platform != "darwin":
        raise RuntimeUnavailable(
            f"CoreML predicts on macOS only (this is {sys.platform}); the spec was checked, "
            "numeric parity needs a macOS runner"
        )
    import coremltools as ct  # pragma: no cover (macOS)

    mlmodel = ct.models.MLModel(str(path))  # pragma: no cover

    def run(images: np.ndarray) -> list[np.ndarray]:  # pragma: no cover
        results = [mlmodel.predict({INPUT_NAME: image[None]}) for image in images]
        return [np.concatenate([np.asarray(r[name]) for r in results]) for name in outputs]

    return run  # pragma: no cover


def describe(path: Path) -> dict[str, Any]:
    """The package's spec as stored: it must load, and say what it takes and gives."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    types = {v: k for k, v in ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.items()}

    def feature(f: Any) -> dict[str, Any]:
        array = f.type.multiArrayType
        return {"name": f.name, "shape": list(array.shape), "dtype": types[array.dataType].lower()}

    meta = spec.description.metadata.userDefined
    return {
        "inputs": [feature(f) for f in spec.description.input],
        "outputs": [feature(f) for f in spec.description.output],
        "classes": json.loads(meta["classes"]) if "classes" in meta else None,
        "spec_version": spec.specificationVersion,
        "model_type": spec.WhichOneof("Type"),
    }
