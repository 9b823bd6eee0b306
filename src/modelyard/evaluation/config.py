"""params.yaml ``evaluate``: the operating threshold, the slices, calibration, and the
held-out-group breakdown that leave-one-group-out gates read."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class CalibrationParams:
    min_score: float = 0.05  # detectors: detections below it are neither calibrated nor scored
    min_per_class: int = 30  # validation detections a class needs for its own calibrator


@dataclass(frozen=True, kw_only=True)
class EvaluateParams:
    threshold: float = 0.5  # operating point: detection score, or positive-class probability
    slice_keys: tuple[str, ...] = ("stream", "scenario", "road_type")
    min_slice_samples: int = 10  # smaller slices are shown, flagged `small`
    group_key: str | None = None  # per held-out group metrics (for LOGO gates); null = off
    threads: int = 2
    calibration: CalibrationParams = field(default_factory=CalibrationParams)

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ConfigError(f"evaluate.threshold: must be between 0 and 1, got {self.threshold}")
        if self.min_slice_samples < 1 or self.threads < 1:
            raise ConfigError("evaluate.min_slice_samples and evaluate.threads: at least 1")
        if not 0 <= self.calibration.min_score < 1:
            raise ConfigError(
                f"evaluate.calibration.min_score: must be in [0, 1), got "
                f"{self.calibration.min_score}"
            )
