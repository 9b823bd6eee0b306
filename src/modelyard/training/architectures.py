"""The architectures ``train.architecture`` may name: a registry, not an if/elif chain.

Each entry says what task it learns, which validation metric picks its best checkpoint, and
how to build its LightningModule and LightningDataModule from the params and the class map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from modelyard.config import pick
from modelyard.training.fit import FitRequest, FitResult, Monitor, lightning_fit

Fit = Callable[[FitRequest], FitResult]


@dataclass(frozen=True, kw_only=True)
class Architecture:
    name: str
    task: str  # detect | classify | regress
    monitor: Monitor
    fit: Fit
    summary: str
    lightning: bool = True  # takes Lightning callbacks (e.g. Optuna's pruning callback)


def _rtdetr(request: FitRequest) -> FitResult:
    from modelyard.training.detectors.coco import CocoDataModule
    from modelyard.training.detectors.rtdetr import RtDetrModule

    params = request.params
    module = RtDetrModule(
        classes=request.classes,
        shape=params.rtdetr,
        weights=params.weights,
        lr=params.lr,
        weight_decay=params.weight_decay,
    )
    data = CocoDataModule(
        request.converted,
        image_size=params.image_size,
        batch_size=params.batch_size,
        num_workers=params.num_workers,
    )
    return lightning_fit(module, data, request)


def _yolo(request: FitRequest) -> FitResult:
    from modelyard.training.detectors import yolo

    return yolo.fit(request)


def _image_head(backbone: str, *, regress: bool) -> Fit:
    def fit(request: FitRequest) -> FitResult:
        from modelyard.training.classifier import ImageHead, LabelledDataModule

        params, head = request.params, request.params.classifier
        module = ImageHead(
            backbone_name=backbone,
            regress=regress,
            weights=params.weights,
            lr=params.lr,
            weight_decay=params.weight_decay,
        )
        data = LabelledDataModule(
            request.converted,
            request.snapshot,
            target="label_value" if regress else head.target,
            good=head.good_threshold,
            image_size=params.image_size,
            batch_size=params.batch_size,
            num_workers=params.num_workers,
        )
        return lightning_fit(module, data, request)

    return fit


# suffix -> (task, monitor, regress, what the head learns)
_HEADS = {
    "binary": ("classify", Monitor(metric="val_auc", mode="max"), False,
               "binary head (train.classifier.target)"),
    "rating": ("regress", Monitor(metric="val_mae", mode="min"), True,
               "0-5 regression head on label_value"),
}  # fmt: skip


def _image_heads() -> list[Architecture]:
    return [
        Architecture(
            name=f"{backbone}-{suffix}",
            task=task,
            monitor=monitor,
            fit=_image_head(backbone, regress=regress),
            summary=f"torchvision {backbone}, {learns}",
        )
        for backbone in ("resnet18", "mobilenet_v3_small")
        for suffix, (task, monitor, regress, learns) in _HEADS.items()
    ]


YOLO_NAMES = [f"{family}{size}" for family in ("yolo11", "yolov8") for size in "nsmlx"]

ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        *(
            Architecture(
                name=name,
                task="detect",
                # ultralytics keeps best.pt by its fitness, which is mAP50-95
                monitor=Monitor(metric="val_map50_95", mode="max"),
                fit=_yolo,
                summary="YOLO (ultralytics trainer), built from its model config",
                lightning=False,
            )
            for name in YOLO_NAMES
        ),
        *_image_heads(),
        Architecture(
            name="rt-detrv2-s",
            task="detect",
            monitor=Monitor(metric="val_map50", mode="max"),
            fit=_rtdetr,
            summary="RT-DETRv2, ResNet-18 backbone (transformers), Lightning",
        ),
    )
}


def names() -> list[str]:
    return sorted(ARCHITECTURES)


def get(name: str) -> Architecture:
    """The architecture called ``name``; an unknown name is an error listing the valid ones."""
    return pick(ARCHITECTURES, name, "train.architecture")
