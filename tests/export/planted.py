"""A planted export error: an exported artifact whose largest convolution on the output
side (the largest of the last quarter of its convolutions, in graph order: the decoder's or
the head's) has its weights scaled after export, as a wrong constant fold or a bad op
conversion would leave them; then checked against the PyTorch model it came from.
``--scale 1`` checks the true export.

Run in a process of its own (TensorFlow must not share one with another exporter)::

    python -m tests.export.planted --format onnx --scale 1.03 --model M --converted C \
        --snapshot S --out DIR [--precision fp32]

prints one JSON line per artifact: file, precision, the tensor changed, parity status,
reason, measures and the first findings. Only fp32 artifacts are planted (their weights are
float32 tensors); the others are checked as exported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from modelyard.export import formats, source
from modelyard.export.formats import Int8
from modelyard.export.run import check_artifact, reference
from modelyard.export.samples import SamplePaths
from tests.export.conftest import FAST

T = TypeVar("T")


def plant_onnx(path: Path, scale: float) -> str:
    """Scale the largest Conv weight of the ONNX file at ``path``; its initializer's name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = {init.name: init for init in model.graph.initializer}
    convs = [n.input[1] for n in model.graph.node if n.op_type == "Conv" and n.input[1] in weights]
    name = max(_output_side(convs), key=lambda w: int(np.prod(weights[w].dims)))
    array = numpy_helper.to_array(weights[name]) * np.float32(scale)
    weights[name].CopyFrom(numpy_helper.from_array(array.astype(np.float32), name))
    onnx.save(model, str(path))
    return str(name)


def plant_tflite(path: Path, scale: float) -> str:
    """Scale the largest float32 CONV_2D filter of the TFLite file at ``path``; its name."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    codes = model.operatorCodes
    conv = schema.BuiltinOperator.CONV_2D
    candidates = []
    for op in graph.operators:
        code = codes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != conv:
            continue
        tensor = graph.tensors[op.inputs[1]]
        data = model.buffers[tensor.buffer].data
        if tensor.type == schema.TensorType.FLOAT32 and data is not None and len(data):
            candidates.append(tensor)
    tensor = max(_output_side(candidates), key=lambda t: len(model.buffers[t.buffer].data))
    buffer = model.buffers[tensor.buffer]
    values = np.frombuffer(bytes(bytearray(buffer.data)), np.float32) * np.float32(scale)
    buffer.data = np.frombuffer(values.astype(np.float32).tobytes(), np.uint8)
    flatbuffer_utils.write_model(model, str(path))
    name = tensor.name
    return name.decode() if isinstance(name, bytes) else str(name)


def _output_side(items: list[T]) -> list[T]:
    """The last quarter of ``items`` (convolutions in graph order)."""
    return items[len(items) - max(1, len(items) // 4) :]


PLANTERS = {"onnx": plant_onnx, "tflite": plant_tflite}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    for flag in ("--model", "--converted", "--snapshot", "--out"):
        p.add_argument(flag, type=Path, required=True)
    p.add_argument("--format", required=True, choices=sorted(PLANTERS))
    p.add_argument("--scale", type=float, action="append", required=True, help="repeatable")
    p.add_argument("--precision", action="append", help="only these variants (default: all)")
    args = p.parse_args(argv)
    fmt = formats.get(args.format)
    torch.set_num_threads(FAST.threads)
    model = source.load(args.model)
    ref = reference(model, SamplePaths(converted=args.converted, snapshot=args.snapshot))
    variants = [v for v in fmt.variants if not args.precision or v.precision in args.precision]
    written = fmt.load().export(model, variants, args.out, Int8(scheme=FAST.int8_scheme))
    for scale in args.scale:
        for variant in variants:
            path, changed = written[variant.name], None
            if scale != 1:
                if variant.precision != "fp32":
                    continue
                path = path.with_name(f"planted_{scale}_{path.name}")
                shutil.copyfile(written[variant.name], path)
                changed = PLANTERS[args.format](path, scale)
            entry = check_artifact(fmt, variant, path, ref, FAST)
            line = {
                "file": entry["file"], "precision": variant.precision, "changed": changed,
                "scale": scale, **entry["parity"],
                "findings": entry["parity_report"]["findings"][:3],
            }  # fmt: skip
            print(json.dumps(line))  # noqa: T201 - the script's output
    return 0


if __name__ == "__main__":
    sys.exit(main())
