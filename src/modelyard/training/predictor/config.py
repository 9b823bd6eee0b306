"""params.yaml ``predictor``: the MLP, its training, the known codecs and the output paths.
The gate's thresholds are not here: they live in acceptance_gates.yaml (``predictor``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelyard.config import from_mapping
from modelyard.errors import ConfigError

KNOWN_CODECS = (
    "libx264",
    "libx265",
    "libvpx-vp9",
    "libaom-av1",
    "libsvtav1",
    "librav1e",
    "libvvenc",
    "h264_nvenc",
    "hevc_nvenc",
    "av1_nvenc",
    "h264_qsv",
    "hevc_qsv",
    "av1_qsv",
)


@dataclass(frozen=True, kw_only=True)
class PredictorParams:
    codecs: tuple[str, ...] = KNOWN_CODECS  # a row of any other codec is rejected
    hidden: tuple[int, ...] = (64, 32)  # widths of the MLP's hidden layers
    epochs: int = 150  # fixed: the held-out fold is never looked at while training
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0  # weights, batch order and the deal of sources to folds
    models: str = "models/predictor"  # ONNX files, their metadata and the cards
    reports: str = "reports/predictor"  # report.json and the run's log

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.hidden:
            raise ConfigError("predictor: epochs and batch_size must be >= 1, hidden non-empty")
        if any(w < 1 for w in self.hidden):
            raise ConfigError(f"predictor.hidden: widths must be >= 1, got {list(self.hidden)}")

    @property
    def models_dir(self) -> Path:
        return Path(self.models)

    @property
    def reports_dir(self) -> Path:
        return Path(self.reports)


def load(raw: object | None) -> PredictorParams:
    """The section as params.yaml has it (absent: the defaults)."""
    return PredictorParams() if raw is None else from_mapping(PredictorParams, raw, "predictor")


__all__ = ["KNOWN_CODECS", "PredictorParams", "load"]
