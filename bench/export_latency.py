"""Export latency: PyTorch eager against every exported runtime, on the same inputs, in one
run, for each model family.

Each (family, format) pair runs in a process of its own, as the export stage does (TensorFlow
must not share one with the others). A process builds the family at the demo's size
(params.yaml ``train``: image size and RT-DETR shape), randomly initialised — speed does not
depend on the weights — exports it with the project's exporter, and times batch-1 calls on the
same seeded images: 3 warm-up calls, then the median of ``--runs``. PyTorch eager is timed in
the ONNX process, before any exporter library is loaded; all runtimes get ``--threads``
intra-op threads. TFLite int8 is timed in both schemes (``export.int8_scheme``): dynamic, as
exported, and static, quantised from the same fp32 file on 16 random calibration images.
CoreML predicts on macOS only and is not timed here.

Target: ONNX (onnxruntime) at least 1.5x faster than PyTorch eager for the detector
(RT-DETRv2-S) at the demo resolution on 2 CPU cores.

    python bench/export_latency.py [--families rt-detrv2-s,yolo11n,resnet18-binary]
        [--formats onnx,tflite] [--runs 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.5
CLASSES = ("car", "person", "sign")


def worker(family: str, fmt_name: str, runs: int, threads: int) -> dict[str, Any]:
    """Export ``family`` to ``fmt_name`` and time PyTorch (ONNX process only) and each variant."""
    import numpy as np
    import torch

    from modelyard.config import load_params, section
    from modelyard.export import formats, source
    from modelyard.export.formats import Int8
    from modelyard.export.runtime import latency, torch_runner
    from modelyard.training.config import TrainParams

    torch.set_num_threads(threads)
    train = section(load_params(ROOT / "params.yaml"), "train", TrainParams)
    model = source.build(family, CLASSES, train.image_size, train.rtdetr)
    rng = np.random.default_rng(0)
    image = rng.random(model.input.shape, dtype=np.float32)
    calibration = rng.random((16, *model.input.shape[1:]), dtype=np.float32)
    timings: dict[str, Any] = {}
    if fmt_name == "onnx":
        timed = latency(torch_runner(model.network), image, runs, threads)
        timings["pytorch eager"] = timed.median_ms
    fmt = formats.get(fmt_name)
    backend = fmt.load()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        written = backend.export(model, fmt.variants, Path(tmp), Int8(scheme="dynamic"))
        export_s = time.perf_counter() - start
        if fmt_name == "tflite":  # the other int8 scheme, from the same fp32 file
            written["model_int8_static"] = Path(tmp) / "model_int8_static.tflite"
            static = Int8(scheme="static", calibration=calibration)
            backend.quantize_int8(written["model_fp32"], written["model_int8_static"], static)
        for name, path in written.items():
            runner = backend.open_runtime(path, model.outputs, threads)
            label = f"{fmt_name} {name}" + (" (dynamic)" if name == "model_int8" else "")
            timings[label] = latency(runner, image, runs, threads).median_ms
    return {"timings": timings, "export_s": round(export_s, 1), "size": train.image_size}


def run_pair(family: str, fmt: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            sys.executable, __file__, "--worker", family, fmt, "--runs", str(args.runs),
            "--threads", str(args.threads), "--json", out.name,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
        return result


def report(family: str, results: dict[str, dict[str, Any]]) -> None:
    timings: dict[str, float] = {}
    for fmt, result in results.items():
        if "error" in result:
            print(f"  {fmt}: FAILED: {result['error']}")
            continue
        timings.update(result["timings"])
        print(f"  {fmt}: exported in {result['export_s']} s at {result['size']} px")
    eager = timings.get("pytorch eager")
    print(f"  {'runtime':<32} {'ms':>8} {'vs eager':>9}")
    for label, ms in timings.items():
        ratio = f"{eager / ms:.2f}x" if eager else "-"
        print(f"  {label:<32} {ms:>8.1f} {ratio:>9}")
    onnx = timings.get("onnx model")
    if family.startswith("rt-detr") and eager and onnx:
        verdict = "met" if eager / onnx >= TARGET else "MISSED"
        print(f"  target ONNX >= {TARGET}x eager for the detector: {eager / onnx:.2f}x, {verdict}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--families", default="rt-detrv2-s,yolo11n,resnet18-binary")
    p.add_argument("--formats", default="onnx,tflite")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", nargs=2, metavar=("FAMILY", "FORMAT"), help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        result = worker(*args.worker, args.runs, args.threads)
        args.json.write_text(json.dumps(result))
        return 0
    print(f"export latency: batch 1, median of {args.runs} runs, {args.threads} threads, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    for family in args.families.split(","):
        print(f"\n{family}")
        report(family, {fmt: run_pair(family, fmt, args) for fmt in args.formats.split(",")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
