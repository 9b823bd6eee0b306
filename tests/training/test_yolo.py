"""YOLO through the ultralytics wrapper: built from its model config (no download), trained
offline, logged through the same hooks as every architecture; the loss falls; the process is
left as it was found."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modelyard.db import jobs
from modelyard.db.connection import Connection
from modelyard.tracking import Tracker
from modelyard.training.run import TrainOptions, train
from tests.training.conftest import tiny_params, train_paths

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_yolo_trains_offline_and_is_tracked_like_the_others(
    prepared: dict[str, Path], tmp_path: Path, conn: Connection, tracker: Tracker
) -> None:
    paths = train_paths(prepared, tmp_path)
    params = tiny_params(architecture="yolo11n", epochs=4, lr=0.002, image_size=128)
    threads = torch.get_num_threads()
    outcome = train(conn, tracker, params, paths, TrainOptions(progress_bar=False))

    # ultralytics' process-wide settings do not outlive its training
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()

    run = tracker.client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["modelyard.architecture"] == "yolo11n"
    history = {
        key: [m.value for m in tracker.client.get_metric_history(run.info.run_id, key)]
        for key in ("train_box_loss", "train_cls_loss", "train_dfl_loss")
    }
    assert all(len(values) == 4 for values in history.values())
    total = [sum(parts) for parts in zip(*history.values(), strict=True)]
    assert total[-1] < total[0], history
    assert [m.step for m in tracker.client.get_metric_history(run.info.run_id, "val_map50")] == [
        0, 1, 2, 3,
    ]  # fmt: skip
    assert "test_map50" in outcome.metrics
    assert outcome.model.name == "model.pt" and outcome.model.stat().st_size > 1_000_000
    assert jobs.get(conn, outcome.job_id)["status"] == "succeeded"


def test_importing_ultralytics_leaves_pillow_s_open_in_place(tmp_path: Path) -> None:
    """ultralytics patches ``Image.open`` to import pi_heif on an unidentified image; after
    the wrapper imports it an unreadable image still raises Pillow's own error."""
    import io

    from PIL import Image, UnidentifiedImageError

    from modelyard.training.detectors.yolo import _ultralytics

    _ultralytics(tmp_path)
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"not an image"))
