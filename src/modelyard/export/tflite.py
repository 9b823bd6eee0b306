"""TFLite: ONNX -> onnxslim -> onnx2tf (a TensorFlow SavedModel) -> TFLite, run by
ai-edge-litert. Three variants from one conversion:

- fp32;
- fp16: weights stored in half precision (the runtime computes in fp32 where it lacks fp16);
- int8: convolutions and fully-connected layers — nearly all of the weights and of the
  multiply-adds — in int8 with weights per channel, by ai-edge-quantizer; the other ops
  (attention softmax, layer norms, deformable sampling) stay float, and so do the input and
  the outputs. Two schemes (``Int8``): ``dynamic`` (the default) quantises each layer's
  input per call from its own range; ``static`` fixes those ranges beforehand from
  train-split calibration images. On two trained RT-DETRv2 models static int8 moved
  detections' scores by up to 0.19 and 0.25, while dynamic stayed within 0.03 and kept every
  box at IoU 0.96 or more, at the same speed and size (README, export). Quantising every
  op of RT-DETR to int8 does not work: TensorFlow's converter rejects it (a Minimum whose
  inputs differ in scale) and the fully quantised model divides by zero at run time.

What it takes to run here, offline:

- torchvision is imported before TensorFlow (the other order segfaults when triton loads);
- onnx2tf fetches a calibration sample from the internet for every image input unless a
  file of that name is in its working directory: one is written there (it only checks the
  conversion with it);
- RT-DETR's GELU becomes ``Erf``, which needs TensorFlow's Flex delegate; onnx2tf writes it
  as built-in ops instead (``replace_to_pseudo_operators``);
- the raw export has constant outputs that onnx2tf refuses; onnxslim folds them first.

The artifacts take NHWC input (N x S x S x 3) and keep the ONNX input and output names in
their ``serving_default`` signature.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torchvision  # noqa: F401  (before TensorFlow: see above)

from modelyard import quiet
from modelyard.errors import ExportError
from modelyard.export import onnx as onnx_backend
from modelyard.export.formats import Int8, Variant
from modelyard.export.runtime import Runner
from modelyard.export.source import INPUT_NAME, ExportModel

log = logging.getLogger(__name__)

SIGNATURE = "serving_default"
ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def export(
    model: ExportModel, variants: Sequence[Variant], folder: Path, int8: Int8
) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    printed = folder / quiet.CONVERTER_LOG
    printed.unlink(missing_ok=True)
    quiet.import_quietly("tensorflow", printed)
    with tempfile.TemporaryDirectory(prefix="tflite-") as tmp, quiet.printed_to(printed):
        work = Path(tmp)
        saved = _named_saved_model(_saved_model(model, work), model, work / "named")
        fp32 = _convert(saved, half=False)
        written = {}
        for variant in variants:
            target = folder / f"{variant.name}.tflite"
            if variant.precision == "fp32":
                target.write_bytes(fp32)
            elif variant.precision == "fp16":
                target.write_bytes(_convert(saved, half=True))
            else:
                source = work / "fp32.tflite"
                source.write_bytes(fp32)
                quantize_int8(source, target, int8)
            written[variant.name] = target
    log.info("tflite: what the converters printed is in %s", printed)
    return written


def _saved_model(model: ExportModel, work: Path) -> Path:
    """onnx2tf's SavedModel of ``model`` (its signature's outputs are output_0, output_1...)."""
    import onnx
    import onnx2tf
    import onnxslim

    raw, slim, out = work / "raw.onnx", work / "model.onnx", work / "onnx2tf"
    onnx_backend.write(model, raw)
    onnx.save(onnxslim.slim(onnx.load(str(raw))), str(slim))
    with _working_dir(work):
        np.save(ONNX2TF_SAMPLE, np.random.default_rng(0).random((20, 128, 128, 3), "f4"))
        onnx2tf.convert(
            input_onnx_file_path=str(slim),
            output_folder_path=str(out),
            replace_to_pseudo_operators=["erf"],
            output_signaturedefs=True,
            non_verbose=True,
            verbosity="error",
        )
    if not (out / "saved_model.pb").is_file():
        raise ExportError(f"onnx2tf wrote no SavedModel for {model.architecture}")
    return out


def _named_saved_model(saved: Path, model: ExportModel, target: Path) -> Path:
    """The SavedModel again, with a signature that names the outputs as the ONNX file does."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved))
    serve = loaded.signatures[SIGNATURE]
    n, c, h, w = model.input.shape
    names = model.outputs

    class Named(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.loaded = loaded  # keeps its variables tracked

        @tf.function(input_signature=[tf.TensorSpec([n, h, w, c], tf.float32, name=INPUT_NAME)])  # type: ignore[untyped-decorator]
        def serve(self, images: Any) -> dict[str, Any]:
            out = serve(**{INPUT_NAME: images})
            return {name: out[f"output_{i}"] for i, name in enumerate(names)}

    named = Named()
    tf.saved_model.save(named, str(target), signatures={SIGNATURE: named.serve})
    return target


def _convert(saved: Path, *, half: bool) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if half:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    data: bytes = converter.convert()
    return data


def quantize_int8(source: Path, target: Path, int8: Int8) -> None:
    """The fp32 TFLite file ``source`` quantised to int8 at ``target`` by ``int8``'s scheme."""
    from ai_edge_quantizer import quantizer, recipe

    static = int8.scheme == "static"
    (rule,) = recipe.static_wi8_ai8() if static else recipe.dynamic_wi8_afp32()
    quant = quantizer.Quantizer(str(source))
    quant.load_quantization_recipe([copy.deepcopy(rule) | {"operation": op} for op in INT8_OPS])
    ranges = None  # dynamic: measured by each call
    if static:
        samples = [{INPUT_NAME: _nhwc(image[None])} for image in int8.calibration]
        ranges = quant.calibrate({SIGNATURE: samples}, num_threads=os.cpu_count() or 1)
    quant.quantize(ranges).export_model(str(target), overwrite=True)


def _nhwc(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


@contextlib.contextmanager
def _working_dir(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _runner(path: Path, threads: int | None = None) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path), num_threads=threads).get_signature_runner(SIGNATURE)


def open_runtime(path: Path, outputs: Sequence[str], threads: int) -> Runner:
    runner = _runner(path, threads)

    def run(images: np.ndarray) -> list[np.ndarray]:
        results = []
        for image in images:  # the artifact's batch is fixed at 1
            out = runner(**{INPUT_NAME: _nhwc(image[None])})
            results.append([np.asarray(out[name]) for name in outputs])
        return [np.concatenate(parts) for parts in zip(*results, strict=True)]

    return run


def describe(path: Path) -> dict[str, Any]:
    runner = _runner(path)

    def spec(name: str, detail: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "shape": detail["shape"].tolist(), "dtype": detail["dtype"].__name__}

    return {
        "inputs": [spec(n, d) for n, d in runner.get_input_details().items()],
        "outputs": [spec(n, d) for n, d in runner.get_output_details().items()],
        "signature": SIGNATURE,
    }
