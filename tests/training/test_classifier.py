"""The image-level heads (binary and 0-5 rating, on resnet18 and mobilenet_v3_small): each
trains a few epochs on tiny data with a falling loss, validated every epoch, tracked like
every architecture; labels come from the snapshot by sample id."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import ConfigError
from modelyard.tracking import Tracker
from modelyard.training import architectures
from modelyard.training.classifier import read_split
from modelyard.training.config import ClassifierParams
from modelyard.training.run import TrainOptions, train
from tests.training.conftest import tiny_params, train_paths

HEADS = [a for a in architectures.names() if a.endswith(("-binary", "-rating"))]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("name", HEADS)
def test_each_head_learns_and_is_tracked(
    name: str, prepared: dict[str, Path], tmp_path: Path, conn: object, tracker: Tracker
) -> None:
    paths = train_paths(prepared, tmp_path)
    params = tiny_params(architecture=name, epochs=4, batch_size=16, lr=3e-3)
    outcome = train(conn, tracker, params, paths, TrainOptions(progress_bar=False))  # type: ignore[arg-type]

    arch = architectures.get(name)
    losses = [m.value for m in tracker.client.get_metric_history(outcome.run_id, "train_loss")]
    assert len(losses) == 4
    assert losses[-1] < losses[0], losses
    assert arch.monitor.metric in outcome.metrics
    assert f"test_{arch.monitor.metric.removeprefix('val_')}" in outcome.metrics


@pytest.mark.postgres
def test_labels_follow_the_target(prepared: dict[str, Path]) -> None:
    args = (prepared["converted"], prepared["snapshot"], "train")
    compliant = read_split(*args, target="is_compliant", good=3.0)
    good = read_split(*args, target="is_good", good=3.0)
    rating = read_split(*args, target="label_value", good=3.0)
    assert {r.target for r in compliant} == {0.0, 1.0}
    assert {r.target for r in good} <= {0.0, 1.0}
    assert all(0.0 <= r.target <= 5.0 for r in rating)
    assert [r.path for r in good] == [r.path for r in rating]  # the same rows, other labels
    assert all(r.path.is_file() for r in compliant)


def test_a_bad_target_is_named() -> None:
    with pytest.raises(ConfigError, match=r"train\.classifier\.target"):
        ClassifierParams(target="is_nice")
