"""YOLO (ultralytics) behind one wrapper: the only module that imports ultralytics.

Offline by construction: its settings live in ``$MODELYARD_HOME/ultralytics`` (not the user's
home), its font is a local copy of matplotlib's DejaVu Sans (so it never fetches Arial), it
installs nothing at run time, and its own MLflow and other integrations are off: the epoch
hooks log every architecture the same way. Importing ultralytics replaces ``PIL.Image.open``
process-wide with one that reaches for ``pi_heif`` on any image Pillow cannot identify; Pillow's
own is put back, so an unreadable photo anywhere else in the process is reported as unreadable.
Architectures are built from ultralytics' model configs (``yolo11n.yaml`` ...): random init, no
download; ``train.weights`` takes a local ``.pt`` for users who have pretrained weights.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml

from modelyard.config import Settings
from modelyard.training.callbacks import finite
from modelyard.training.fit import FitRequest, FitResult
from modelyard.training.process import settings_kept

log = logging.getLogger(__name__)

RUN_NAME = "yolo"
INTEGRATIONS_OFF = {
    "mlflow": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "sync": False,
    "vscode_msg": False,
    "openvino_msg": False,
}
# ultralytics' metric names -> ours (MLflow refuses parentheses in metric names)
RENAMES = {
    "metrics/mAP50(B)": "val_map50",
    "metrics/mAP50-95(B)": "val_map50_95",
    "metrics/precision(B)": "val_precision",
    "metrics/recall(B)": "val_recall",
}


def _ultralytics(home: Path) -> Any:
    """Import ultralytics with the offline settings in place; returns the YOLO class."""
    config = home / "ultralytics"
    fonts = config / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (fonts / name).exists():
            shutil.copyfile(dejavu, fonts / name)
    os.environ.update(YOLO_CONFIG_DIR=str(config), YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0")
    from PIL import Image
    from ultralytics import YOLO, settings  # type: ignore[attr-defined]
    from ultralytics.utils import patches

    Image.open = patches._image_open

    settings.update(
        datasets_dir=str(config / "datasets"), runs_dir=str(config / "runs"), **INTEGRATIONS_OFF
    )
    return YOLO


def load_network(weights: Path) -> torch.nn.Module:
    """The detection network of a trained ``.pt``, fused and in eval mode, as a plain torch
    module: images (N, 3, H, W) in [0, 1] -> (N, 4 + classes, anchors), boxes as pixel
    (cx, cy, w, h) followed by per-class scores."""
    yolo_class = _ultralytics(Settings.from_env().home)
    network: Any = yolo_class(str(weights), task="detect").model
    return _Predictions(network.fuse().eval())


class _Predictions(torch.nn.Module):
    """Only the decoded predictions (in eval mode the head also returns its raw maps)."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.network(images)
        predictions: torch.Tensor = out[0] if isinstance(out, tuple | list) else out
        return predictions


def _data_file(converted: Path, folder: Path) -> Path:
    """convert's data.yaml with an absolute ``path`` (ultralytics would look elsewhere)."""
    data = yaml.safe_load((converted / "yolo" / "data.yaml").read_text(encoding="utf-8"))
    data["path"] = str((converted / "yolo").resolve())
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "data.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


def _metrics(raw: dict[str, Any]) -> dict[str, float]:
    renamed = {RENAMES.get(k, k.replace("/", "_")): v for k, v in raw.items()}
    return finite(renamed)


def _device(request: FitRequest) -> str | None:
    dist = request.params.distributed
    if dist.accelerator == "auto":
        return None
    return "cpu" if dist.accelerator == "cpu" else dist.devices


def fit(request: FitRequest) -> FitResult:
    """Train with ultralytics' trainer; ``last.pt`` is kept for ``resume``."""
    yolo_class = _ultralytics(Settings.from_env().home)
    params = request.params
    data = _data_file(request.converted, request.checkpoints)
    last = request.checkpoints / RUN_NAME / "weights" / "last.pt"
    if request.resume:
        log.info("resuming from %s", last)
        model = yolo_class(str(last))
    else:
        model = yolo_class(params.weights or f"{params.architecture}.yaml", task="detect")

    finished = False

    def on_fit_epoch_end(trainer: Any) -> None:
        nonlocal finished
        if finished:  # ultralytics' final evaluation of best.pt calls this once more
            return
        finished = bool(trainer.stop)
        metrics = _metrics(
            {**trainer.label_loss_items(trainer.tloss, prefix="train"), **trainer.metrics}
        )
        metrics["lr"] = float(trainer.optimizer.param_groups[0]["lr"])
        for hook in request.hooks:
            hook(trainer.epoch, trainer.epochs, metrics)

    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
    threads = torch.get_num_threads()
    # ultralytics sets torch to cpu_count - 1 threads when it picks the CPU (one on 2 cores),
    # to leave a core to data-loading workers; training here loads in the main process
    model.add_callback("on_train_start", lambda _: torch.set_num_threads(threads))
    with _console(request.progress_bar), settings_kept():
        result = _train_and_test(model, yolo_class, data, request)
    return result


@contextmanager
def _console(shown: bool) -> Iterator[None]:
    """ultralytics' own bars and summaries only where a progress bar is wanted (a terminal);
    elsewhere the epoch hooks' one line an epoch is the record."""
    logger = logging.getLogger("ultralytics")
    level = logger.level
    if not shown:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _train_and_test(model: Any, yolo_class: Any, data: Path, request: FitRequest) -> FitResult:
    params = request.params
    model.train(
        data=str(data),
        epochs=params.epochs,
        imgsz=params.image_size,
        batch=params.batch_size,
        lr0=params.lr,
        weight_decay=params.weight_decay,
        optimizer="AdamW",
        patience=params.patience,
        device=_device(request),
        workers=params.num_workers,
        seed=0,
        deterministic=True,
        pretrained=bool(params.weights),
        amp=params.precision != "32-true",
        plots=False,
        project=str(request.checkpoints),
        name=RUN_NAME,
        exist_ok=True,
        resume=request.resume,
        verbose=False,
    )
    trainer = model.trainer
    metrics = _metrics(trainer.metrics)
    if request.test:
        tested = yolo_class(str(trainer.best)).val(
            data=str(data), split="test", imgsz=params.image_size, batch=params.batch_size,
            plots=False, verbose=False, project=str(request.checkpoints), name="test",
            exist_ok=True,
        )  # fmt: skip
        metrics.update(test_map50=float(tested.box.map50), test_map50_95=float(tested.box.map))
    return FitResult(
        best_checkpoint=Path(trainer.best),
        best_score=float(trainer.best_fitness or 0.0),
        epochs=int(trainer.epoch) + 1,
        metrics=metrics,
    )
