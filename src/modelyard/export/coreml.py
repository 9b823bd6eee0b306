"""CoreML: an ``.mlpackage`` (ML program, fp16 compute) converted by coremltools from the
traced model, shipped as one file, ``model.mlpackage.zip``: the package's files in name
order, each stored with a fixed time and mode, so that the same package always zips to the
same bytes and a device checks it with ``sha256sum`` like any other artifact.

``predict`` runs on macOS only. Elsewhere the artifact is checked by its spec (``describe``:
it loads, input and output names, shapes and types, the class labels in its metadata) and
its numeric parity is reported as skipped with that reason, never as passed.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision  # noqa: F401  (before coremltools, which loads TensorFlow: see tflite.py)

from modelyard import quiet
from modelyard.errors import ExportError, RuntimeUnavailable
from modelyard.export.formats import Int8, Variant
from modelyard.export.runtime import Runner
from modelyard.export.source import INPUT_NAME, ExportModel

DEPLOYMENT_TARGET = "iOS16"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can say: no build time leaks in


def export(
    model: ExportModel, variants: Sequence[Variant], folder: Path, int8: Int8
) -> dict[str, Path]:
    del int8  # fp16 only
    folder.mkdir(parents=True, exist_ok=True)
    printed = folder / quiet.CONVERTER_LOG
    printed.unlink(missing_ok=True)
    quiet.import_quietly("coremltools", printed)  # it loads TensorFlow
    logging.getLogger("coremltools").setLevel(logging.WARNING)  # it logs every graph pass
    example = torch.zeros(model.input.shape)
    with torch.no_grad():
        traced = torch.jit.trace(model.network, (example,), check_trace=False)  # type: ignore[no-untyped-call]
    with quiet.printed_to(printed):  # its progress bars
        return {v.name: _converted(traced, model, v, folder) for v in variants}


def _converted(
    traced: torch.jit.ScriptModule, model: ExportModel, variant: Variant, folder: Path
) -> Path:
    """``folder/<variant>.mlpackage.zip``, converted from the traced model."""
    import coremltools as ct

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
    target = folder / f"{variant.name}.mlpackage.zip"
    with tempfile.TemporaryDirectory(prefix="modelyard-coreml-") as tmp:
        package = Path(tmp) / f"{variant.name}.mlpackage"
        mlmodel.save(str(package))
        zip_package(package, target)
    return target


def zip_package(package: Path, target: Path) -> None:
    """``package`` (a folder) as a zip whose bytes depend only on the files' names and
    contents; entries are ``<name>.mlpackage/<relative path>``."""
    tmp = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for file in sorted(p for p in package.rglob("*") if p.is_file()):
            name = f"{package.name}/{file.relative_to(package).as_posix()}"
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever machine zips it
            archive.writestr(info, file.read_bytes(), compresslevel=6)
    tmp.replace(target)


@contextmanager
def unzipped(path: Path) -> Iterator[Path]:
    """The ``.mlpackage`` folder inside ``model.mlpackage.zip``, extracted for the length of
    the block (coremltools reads folders)."""
    with tempfile.TemporaryDirectory(prefix="modelyard-coreml-") as tmp, zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.startswith("/") or ".." in name.split("/"):
                raise ExportError(f"{path}: entry {name!r} points outside the package")
        z.extractall(tmp)
        packages = sorted(Path(tmp).glob("*.mlpackage"))
        if len(packages) != 1:
            raise RuntimeUnavailable(
                f"{path}: expected one .mlpackage inside, found {len(packages)}"
            )
        yield packages[0]


def open_runtime(path: Path, outputs: Sequence[str], threads: int) -> Runner:
    if sys.platform != "darwin":
        raise RuntimeUnavailable(
            f"CoreML predicts on macOS only (this is {sys.platform}); the spec was checked, "
            "numeric parity needs a macOS runner"
        )
    import coremltools as ct  # pragma: no cover (macOS)

    with unzipped(path) as package:  # pragma: no cover
        mlmodel = ct.models.MLModel(str(package))  # compiled on load: the folder may go

    def run(images: np.ndarray) -> list[np.ndarray]:  # pragma: no cover
        results = [mlmodel.predict({INPUT_NAME: image[None]}) for image in images]
        return [np.concatenate([np.asarray(r[name]) for r in results]) for name in outputs]

    return run  # pragma: no cover


def describe(path: Path) -> dict[str, Any]:
    """The package's spec as stored: it must load, and say what it takes and gives."""
    import coremltools as ct

    with unzipped(path) as package:
        spec = ct.utils.load_spec(str(package))
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
