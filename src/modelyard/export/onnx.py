"""ONNX: the TorchScript exporter (opset 17), run by onnxruntime.

``dynamo=True`` (torch's default) fails on RT-DETRv2; the TorchScript exporter runs and its
output agrees with PyTorch once the model is trained (see docs on parity). Every variant is
checked with ``onnx.checker`` before it is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.export.formats import Int8, Variant
from modelyard.export.runtime import Runner
from modelyard.export.source import INPUT_NAME, ExportModel

OPSET = 17


def export(
    model: ExportModel, variants: Sequence[Variant], folder: Path, int8: Int8
) -> dict[str, Path]:
    del int8  # float only
    written = {}
    for variant in variants:
        target = folder / f"{variant.name}.onnx"
        write(model, target, dynamic_batch=variant.dynamic_batch)
        written[variant.name] = target
    return written


def write(model: ExportModel, target: Path, *, dynamic_batch: bool = False) -> None:
    """``model`` as an ONNX file at ``target`` (checked by onnx.checker)."""
    write_network(
        model.network,
        torch.zeros(model.input.shape),
        target,
        input_name=INPUT_NAME,
        outputs=model.outputs,
        dynamic_batch=dynamic_batch,
    )


def write_network(
    network: torch.nn.Module,
    example: torch.Tensor,
    target: Path,
    *,
    input_name: str,
    outputs: Sequence[str],
    dynamic_batch: bool = False,
) -> None:
    """Any one-input ``network`` as a checked ONNX file (the predictor's MLP, for one)."""
    import onnx

    axes = {n: {0: "batch"} for n in (input_name, *outputs)} if dynamic_batch else None
    target.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            network,
            (example,),
            str(target),
            dynamo=False,
            opset_version=OPSET,
            input_names=[input_name],
            output_names=list(outputs),
            dynamic_axes=axes,
        )
    onnx.checker.check_model(str(target), full_check=True)


def open_runtime(path: Path, outputs: Sequence[str], threads: int) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(images: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o) for o in session.run(list(outputs), {name: images})]

    return run


def describe(path: Path) -> dict[str, Any]:
    """Inputs and outputs as the file declares them (a dynamic axis shows as its name)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def spec(value: Any) -> dict[str, Any]:
        tensor = value.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        return {
            "name": value.name,
            "shape": dims,
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name,
        }

    return {
        "inputs": [spec(v) for v in graph.input],
        "outputs": [spec(v) for v in graph.output],
        "opset": OPSET,
    }
