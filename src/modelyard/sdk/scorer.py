"""Scorer: a downloaded bundle -> scores, the same way on a device, in ``modelyard score``
and in the promotion reference.

    bundle = manager.get_model(DownloadMode.LOCAL_MODEL)
    scorer = Scorer(bundle.path)                    # ONNX; Scorer(bundle.path, fmt="tflite")
    for result in scorer.score([Image.open("a.jpg")]):
        print(result.score, result.decision, result.model_version)

A bundle folder holds ``manifest.json`` (the signed manifest), ``latest.json`` (the answer
of ``/api/v1/models/latest`` it came with: the operating threshold, the telemetry bins) and
``files/``: the format's model and its ``manifest.json`` (input size, normalisation, layout,
outputs, decoder), ``calibration.json`` and ``classes.json``.

Each result has ``raw_score`` (the model's own number), ``score`` (calibrated: the
probability a detection or a positive is right; the 0-5 rating of a rating model as it is),
``decision`` (``score`` at or above the threshold), ``model_version`` (``policy/vN``), the
boxes of a detector, and what telemetry bins per image (brightness, contrast, blur, top
confidence, detection count and each detection's calibrated score).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modelyard.errors import DeliveryError
from modelyard.sdk import imaging

MIN_SCORE = 0.05  # detections below it are the decoder's padding, not predictions
DEFAULT_THRESHOLD = 0.5
Runner = Callable[[np.ndarray], list[np.ndarray]]


@dataclass(frozen=True, kw_only=True)
class Box:
    xyxy: tuple[float, float, float, float]  # pixels of the image as given
    class_name: str
    raw_score: float
    score: float


@dataclass(frozen=True, kw_only=True)
class Score:
    model_version: str  # policy/vN
    bundle_id: str
    raw_score: float  # detectors: the top detection's; image heads: the output
    score: float  # calibrated (a rating model's 0-5 as it is)
    decision: bool  # score >= threshold
    threshold: float
    confidence: float  # detectors: top calibrated score (0 with none); classifiers: max(p, 1-p)
    brightness: float
    contrast: float
    blur: float
    latency_ms: float  # the model's share of this image, batch time / batch size
    boxes: tuple[Box, ...] = ()
    predicted: tuple[str, ...] = ()  # classes decided: boxes at threshold, or positive/negative
    scores: tuple[float, ...] = field(default=())  # every detection's calibrated score
    detections: int | None = None  # detectors: how many scored at or above MIN_SCORE

    def features(self) -> dict[str, list[float]]:
        """This image's values of each telemetry feature (``score`` may hold several)."""
        out = {
            "confidence": [self.confidence],
            "brightness": [self.brightness],
            "contrast": [self.contrast],
            "blur": [self.blur],
            "score": list(self.scores),
        }
        if self.detections is not None:
            out["detections_per_image"] = [float(self.detections)]
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scorer:
    """A bundle folder as the SDK keeps it (``manifest.json``, ``latest.json``, ``files/``)."""

    def __init__(
        self, bundle: Path, *, fmt: str = "onnx", threshold: float | None = None, threads: int = 1,
    ) -> None:  # fmt: skip
        self.path = Path(bundle)
        files = self.path / "files"
        manifest = _read(self.path / "manifest.json")
        latest = _read(self.path / "latest.json") if (self.path / "latest.json").is_file() else {}
        model = next(
            (a for a in manifest["artifacts"]
             if a["role"] == "model" and a["primary"] and a["format"] == fmt),
            None,
        )  # fmt: skip
        if model is None or not (files / model["name"]).is_file():
            held = sorted({a["format"] for a in manifest["artifacts"] if a["role"] == "model"
                           and (files / a["name"]).is_file()})  # fmt: skip
            raise DeliveryError(
                f"{self.path}: no {fmt} model here (held: {', '.join(held) or 'none'}); "
                f"ask /latest for it with formats={fmt}"
            )
        chosen = threshold if threshold is not None else latest.get("threshold")
        self._load(files, files / model["name"], fmt, chosen, threads)
        self.bundle_id = str(manifest["bundle_id"])
        self.model_version = f"{manifest['policy_id']}/v{manifest['bundle_version']}"

    @classmethod
    def from_export(
        cls, folder: Path, *, fmt: str = "onnx", threshold: float | None = None, threads: int = 1
    ) -> Scorer:
        """An export folder (``<fmt>/manifest.json``, ``calibration.json``) before it is a
        bundle: what the promotion reference is measured with. Its fixed-batch artifact."""
        scorer = cls.__new__(cls)
        spec = _read(Path(folder) / fmt / "manifest.json")
        fixed = [a for a in spec["artifacts"] if a.get("batch") != "dynamic"]
        artifact = next((a for a in fixed if a.get("precision", "fp32") == "fp32"), fixed[0])
        scorer.path = Path(folder)
        scorer._load(Path(folder), Path(folder) / fmt / artifact["file"], fmt, threshold, threads)
        scorer.bundle_id = ""
        scorer.model_version = str(spec.get("model_version") or "export")
        return scorer

    def _load(
        self, files: Path, model: Path, fmt: str, threshold: float | None, threads: int
    ) -> None:
        spec_path = files / fmt / "manifest.json"
        if not spec_path.is_file():
            raise DeliveryError(f"{files}: no {fmt}/manifest.json beside the model")
        self.spec = _read(spec_path)
        self.model_file = model
        self.task: str = self.spec["task"]
        self.classes: list[str] = list(self.spec["classes"])
        calibration = files / "calibration.json"
        self.calibration = _read(calibration) if calibration.is_file() else None
        default = self.spec.get("good_threshold", DEFAULT_THRESHOLD)  # a rating's, or 0.5
        self.threshold = float(threshold if threshold is not None else default)
        self._run = _open(fmt, model, self.spec["outputs"], threads)
        shape, layout = self.spec["input"]["shape"], self.spec["input"].get("layout", "NCHW")
        self._side = int(shape[2] if layout == "NHWC" else shape[3])  # the square input's width

    def score(self, images: Iterable[Image.Image], batch_size: int = 8) -> list[Score]:
        """One result per image, in order, ``batch_size`` images to a model call (the
        artifact's batch is fixed at 1, so a batch is that many calls)."""
        out: list[Score] = []
        batch: list[Image.Image] = []
        for image in images:
            batch.append(image)
            if len(batch) == batch_size:
                out.extend(self._batch(batch))
                batch = []
        if batch:
            out.extend(self._batch(batch))
        return out

    def _batch(self, images: Sequence[Image.Image]) -> list[Score]:
        x = np.stack([imaging.pixels(i, self.spec["input"]) for i in images])
        started = time.perf_counter()
        outputs = [self._run(x[i : i + 1]) for i in range(len(images))]
        latency = (time.perf_counter() - started) * 1000 / len(images)
        return [self._one(i, o, latency) for i, o in zip(images, outputs, strict=True)]

    def _one(self, image: Image.Image, outputs: list[np.ndarray], latency: float) -> Score:
        brightness, contrast, blur = imaging.qualities(image)
        common: dict[str, Any] = {"model_version": self.model_version, "bundle_id": self.bundle_id,
                  "threshold": self.threshold, "brightness": brightness, "contrast": contrast,
                  "blur": blur, "latency_ms": latency}  # fmt: skip
        if self.task == "detect":
            return self._detections(image, outputs, common)
        value = float(np.asarray(outputs[0], dtype=np.float64).reshape(-1)[0])
        if self.task == "classify":
            p = float(imaging.calibrate(self.calibration, np.array([value]), np.array([0]),
                                        self.classes)[0])  # fmt: skip
            decided = p >= self.threshold
            return Score(raw_score=value, score=p, decision=decided, confidence=max(p, 1 - p),
                         predicted=("positive" if decided else "negative",), scores=(p,),
                         **common)  # fmt: skip
        return Score(raw_score=value, score=value, decision=value >= self.threshold,
                     confidence=1.0, **common)  # fmt: skip

    def _detections(
        self, image: Image.Image, outputs: list[np.ndarray], common: dict[str, Any]
    ) -> Score:
        size = (image.height, image.width)
        if self.spec["architecture"].startswith("rt-detr"):
            found = imaging.rtdetr(outputs[0][0], outputs[1][0], size)
        else:
            found = imaging.yolo(outputs[0][0], size, self._side)
        keep = found["scores"] >= MIN_SCORE
        raw, labels, xyxy = found["scores"][keep], found["labels"][keep], found["boxes"][keep]
        sure = imaging.calibrate(self.calibration, raw, labels, self.classes)
        boxes = tuple(
            Box(xyxy=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                class_name=self.classes[int(c)], raw_score=float(r), score=float(s))
            for b, c, r, s in zip(xyxy, labels, raw, sure, strict=True)
        )  # fmt: skip
        top = float(sure.max()) if len(sure) else 0.0
        return Score(
            raw_score=float(raw.max()) if len(raw) else 0.0, score=top,
            decision=top >= self.threshold, confidence=top, boxes=boxes,
            predicted=tuple(b.class_name for b in boxes if b.score >= self.threshold),
            scores=tuple(float(s) for s in sure), detections=len(boxes), **common,
        )  # fmt: skip


def _open(fmt: str, path: Path, outputs: Sequence[str], threads: int) -> Runner:
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run_onnx(x: np.ndarray) -> list[np.ndarray]:
            return [np.asarray(o) for o in session.run(list(outputs), {name: x})]

        return run_onnx
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(path), num_threads=threads).get_signature_runner(
            "serving_default"
        )

        def run_tflite(x: np.ndarray) -> list[np.ndarray]:
            out = runner(images=np.ascontiguousarray(x, dtype=np.float32))
            return [np.asarray(out[n]) for n in outputs]

        return run_tflite
    raise DeliveryError(f"the scorer runs onnx or tflite bundles, not {fmt}")


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DeliveryError(f"{path}: missing; download the bundle again")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
