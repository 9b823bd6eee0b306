"""The trained model the ``train`` stage published, as exporters take it: a plain torch module
with one fixed input (``images``, N x 3 x S x S float32) and named outputs, plus the input
spec a device needs to feed it the same pixels training saw."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from modelyard.errors import ConfigError
from modelyard.export import decode
from modelyard.training import architectures
from modelyard.training.architectures import Architecture
from modelyard.training.classifier import MEAN, STD
from modelyard.training.config import RtDetrParams

INPUT_NAME = "images"


@dataclass(frozen=True, kw_only=True)
class InputSpec:
    shape: tuple[int, int, int, int]  # N, C, H, W of the fixed-shape artifacts
    dtype: str = "float32"
    layout: str = "NCHW"  # TFLite artifacts take NHWC; their manifest says so
    colour: str = "RGB"
    resize: str = "bilinear to H x W, aspect ratio not kept"
    scale: float = 1 / 255  # pixel bytes times this, then (x - mean) / std
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def as_dict(self) -> dict[str, Any]:
        """As JSON has it (lists, not tuples)."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {"name": INPUT_NAME, **values}


@dataclass(frozen=True, kw_only=True)
class ExportModel:
    architecture: str
    family: str  # rtdetr | yolo | image-head: how its outputs are decoded
    task: str  # detect | classify | regress
    classes: tuple[str, ...]
    network: torch.nn.Module
    input: InputSpec
    outputs: tuple[str, ...]
    checkpoint: Path
    target: str = ""  # image heads: the label they learnt (is_compliant, is_good, label_value)
    good_threshold: float = 3.0  # is_good: label_value at or above it


class _Probability(torch.nn.Module):
    """Image heads: the binary head's probability (sigmoid of its logit), or the rating.
    Wraps the torchvision network, not the LightningModule (tracing that asks for its
    Trainer)."""

    def __init__(self, network: torch.nn.Module, *, regress: bool) -> None:
        super().__init__()
        self.network, self.regress = network, regress

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.network(images).reshape(-1, 1)
        return out if self.regress else out.sigmoid()


def load(model_dir: Path) -> ExportModel:
    """The model in ``model_dir`` (``train``'s output: model.ckpt or model.pt, config.json,
    classes.json), in eval mode."""
    config = _read(model_dir / "config.json")
    classes = tuple(_read(model_dir / "classes.json")["classes"])
    arch = architectures.get(config["architecture"])
    size = int(config["image_size"])
    network: torch.nn.Module
    if arch.name.startswith("rt-detr"):
        from modelyard.training.detectors.rtdetr import ExportHead, RtDetrModule

        checkpoint = _checkpoint(model_dir, ".ckpt")
        module = RtDetrModule.load_from_checkpoint(checkpoint, map_location="cpu")
        network = ExportHead(module.model, size)
    elif arch.task == "detect":
        from modelyard.training.detectors import yolo

        checkpoint = _checkpoint(model_dir, ".pt")
        network = yolo.load_network(checkpoint)
    else:
        from modelyard.training.classifier import ImageHead

        checkpoint = _checkpoint(model_dir, ".ckpt")
        head = ImageHead.load_from_checkpoint(checkpoint, map_location="cpu")
        network = _Probability(head.net, regress=arch.task == "regress")
    heads = config.get("classifier", {})
    return _assemble(
        arch, network, classes, size, checkpoint,
        target=heads.get("target", ""), good=float(heads.get("good_threshold", 3.0)),
    )  # fmt: skip


def build(
    architecture: str, classes: tuple[str, ...], image_size: int, shape: RtDetrParams
) -> ExportModel:
    """A randomly initialised ``architecture`` (for benchmarks: speed does not depend on the
    weights). YOLO is built from ultralytics' config with its 80 classes."""
    arch = architectures.get(architecture)
    network: torch.nn.Module
    if arch.name.startswith("rt-detr"):
        from modelyard.training.detectors import rtdetr

        network = rtdetr.ExportHead(rtdetr.build(classes, shape, None), image_size)
    elif arch.task == "detect":
        from modelyard.training.detectors import yolo

        network = yolo.load_network(Path(f"{arch.name}.yaml"))
    else:
        from modelyard.training.classifier import backbone

        net = backbone(arch.name.rsplit("-", 1)[0], None)
        network = _Probability(net, regress=arch.task == "regress")
    return _assemble(arch, network, classes, image_size, Path(f"{arch.name}.random"))


def _assemble(
    arch: Architecture, network: torch.nn.Module, classes: tuple[str, ...], size: int,
    checkpoint: Path, *, target: str = "is_compliant", good: float = 3.0,
) -> ExportModel:  # fmt: skip
    shape = (1, 3, size, size)
    if arch.task == "detect":
        family = decode.family(arch.name)
        outputs: tuple[str, ...] = ("logits", "boxes") if family == "rtdetr" else ("predictions",)
        spec, target = InputSpec(shape=shape), ""
    else:
        family, spec = "image-head", InputSpec(shape=shape, mean=MEAN, std=STD)
        outputs = ("rating",) if arch.task == "regress" else ("probability",)
        target = "label_value" if arch.task == "regress" else target
    return ExportModel(
        architecture=arch.name,
        family=family,
        task=arch.task,
        classes=classes,
        network=network.eval(),
        input=spec,
        outputs=outputs,
        checkpoint=checkpoint,
        target=target,
        good_threshold=good,
    )


def _checkpoint(model_dir: Path, suffix: str) -> Path:
    path = model_dir / f"model{suffix}"
    if not path.is_file():
        raise ConfigError(f"{path}: no trained model; run `dvc repro train`")
    return path


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: missing; run `dvc repro train`")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
