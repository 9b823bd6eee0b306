"""params.yaml ``export``: latency runs, the int8 scheme and its calibration, and the parity
tolerances."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard.errors import ConfigError

PRECISIONS = ("fp32", "fp16", "int8")
INT8_SCHEMES = ("dynamic", "static")


@dataclass(frozen=True, kw_only=True)
class Tolerance:
    """How far an artifact of one precision may stray from the PyTorch model.

    Detectors: a matched pair of detections must overlap by ``box_iou`` and differ in score
    by at most ``score``; test-split mAP50 may move by ``map50``. Image heads: any output may
    differ by ``output`` and the test metric (accuracy, AUC or MAE) by ``metric``. Every
    artifact: a raw output value may differ by ``tensor`` of its channel's scale (see
    ``parity``; docs/export.md says how each bound was measured). On a small test split a
    ranking metric moves in steps (AUC: 1 / (positives x negatives)), so one pair of
    near-equal scores swapping order can move it by a step however close the outputs are."""

    box_iou: float
    score: float
    map50: float
    output: float
    metric: float
    tensor: float


@dataclass(frozen=True, kw_only=True)
class ParityParams:
    sample_images: int = 32  # test images whose detections are matched one by one
    score_threshold: float = 0.3  # detections at or above it must have a partner
    match_iou: float = 0.5  # two detections of one class at least this close are partners
    fp32: Tolerance = field(
        default_factory=lambda: Tolerance(box_iou=0.95, score=0.02, map50=0.01, output=1e-3,
                                          metric=0.02, tensor=1e-5)
    )  # fmt: skip
    fp16: Tolerance = field(
        default_factory=lambda: Tolerance(box_iou=0.9, score=0.05, map50=0.02, output=0.01,
                                          metric=0.02, tensor=0.01)
    )  # fmt: skip
    int8: Tolerance = field(
        default_factory=lambda: Tolerance(box_iou=0.75, score=0.15, map50=0.03, output=0.1,
                                          metric=0.05, tensor=0.5)
    )  # fmt: skip

    def tolerance(self, precision: str) -> Tolerance:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
        tol: Tolerance = getattr(self, precision)
        return tol


@dataclass(frozen=True, kw_only=True)
class ExportParams:
    threads: int = 2  # intra-op threads of every runtime, for latency and parity alike
    latency_runs: int = 20  # timed runs at batch 1 (after 3 warm-up runs); the median is kept
    int8_scheme: str = "dynamic"  # dynamic | static: how int8 artifacts quantise activations
    calibration_images: int = 32  # static int8: train-split images the quantiser calibrates on
    parity: ParityParams = field(default_factory=ParityParams)

    def __post_init__(self) -> None:
        for name in ("threads", "latency_runs", "calibration_images"):
            if getattr(self, name) < 1:
                raise ConfigError(f"export.{name}: must be at least 1, got {getattr(self, name)}")
        check_int8_scheme(self.int8_scheme)


def check_int8_scheme(scheme: str) -> None:
    if scheme not in INT8_SCHEMES:
        raise ConfigError(f"export.int8_scheme: '{scheme}' is not one of {', '.join(INT8_SCHEMES)}")
