"""params.yaml ``train``: what a training run is told, as a frozen dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

from modelyard.errors import ConfigError

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


@dataclass(frozen=True, kw_only=True)
class RtDetrParams:
    """The RT-DETRv2 network's size (ResNet-18 backbone in every case)."""

    num_queries: int = 100
    num_denoising: int = 100
    decoder_layers: int = 3
    d_model: int = 256
    ffn_dim: int = 1024


BINARY_TARGETS = ("is_compliant", "is_good")


@dataclass(frozen=True, kw_only=True)
class ClassifierParams:
    """The image-level heads: what the binary head learns."""

    target: str = "is_compliant"  # or is_good: label_value >= good_threshold
    good_threshold: float = 3.0

    def __post_init__(self) -> None:
        if self.target not in BINARY_TARGETS:
            raise ConfigError(
                f"train.classifier.target: '{self.target}' is not one of "
                f"{', '.join(BINARY_TARGETS)}"
            )


@dataclass(frozen=True, kw_only=True)
class DistributedParams:
    """Passed to Lightning's Trainer as they are (several GPUs or nodes; not used on CPU)."""

    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1


@dataclass(frozen=True, kw_only=True)
class TrainParams:
    architecture: str = "rt-detrv2-s"
    epochs: int = 10
    batch_size: int = 8
    image_size: int = 192
    lr: float = 2e-4
    weight_decay: float = 1e-4
    gradient_clip: float = 0.1
    precision: str = "32-true"
    patience: int = 5  # epochs without a better validation metric before stopping
    weights: str | None = None  # a local path or hub id of pretrained weights; else random init
    num_workers: int = 0
    experiment: str = "modelyard-train"
    rtdetr: RtDetrParams = field(default_factory=RtDetrParams)
    classifier: ClassifierParams = field(default_factory=ClassifierParams)
    distributed: DistributedParams = field(default_factory=DistributedParams)

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "image_size", "lr")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name}: must be positive, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"train.precision: '{self.precision}' is not one of {', '.join(PRECISIONS)}"
            )
        if self.image_size % 32:
            raise ConfigError(
                f"train.image_size: {self.image_size} is not a multiple of 32 (the detectors' "
                f"largest stride); try {max(32, round(self.image_size / 32) * 32)}"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_overrides(params: TrainParams, values: Mapping[str, Any], where: str) -> TrainParams:
    """``params`` with dotted keys (``lr``, ``rtdetr.num_queries``) replaced; an unknown key
    is an error naming ``where``.key."""
    for key, value in values.items():
        params = _replace(params, key.split("."), value, f"{where}.{key}")
    return params


def setting(params: TrainParams, key: str, where: str) -> Any:
    """The value of dotted ``key``; an unknown key is an error naming ``where``.key."""
    obj: Any = params
    for part in key.split("."):
        names = {f.name for f in fields(obj)} if is_dataclass(obj) else set()
        if part not in names:
            raise ConfigError(
                f"{where}.{key}: '{part}' is not a train setting; valid: {', '.join(sorted(names))}"
            )
        obj = getattr(obj, part)
    return obj


def _replace(obj: Any, parts: list[str], value: Any, path: str) -> Any:
    names = {f.name for f in fields(obj)}
    head = parts[0]
    if head not in names:
        raise ConfigError(
            f"{path}: '{head}' is not a train setting; valid: {', '.join(sorted(names))}"
        )
    if len(parts) == 1:
        return replace(obj, **{head: value})
    inner = getattr(obj, head)
    if not is_dataclass(inner):
        raise ConfigError(f"{path}: '{head}' has no sub-settings")
    return replace(obj, **{head: _replace(inner, parts[1:], value, path)})
