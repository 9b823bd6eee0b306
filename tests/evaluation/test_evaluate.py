"""The evaluate stage's work on really trained models and their real ONNX exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.evaluation import calibration, plots
from modelyard.evaluation.calibration import ScoreCalibration
from modelyard.evaluation.run import summary
from tests.evaluation.conftest import exported_and_evaluated
from tests.trained import Trained

pytestmark = pytest.mark.slow


def test_a_detector_is_measured_per_slice_per_group_and_per_artifact(
    trained: Trained, tmp_path: Path
) -> None:
    result = exported_and_evaluated(trained, "yolo11n", tmp_path)
    report = result.report
    assert report["task"] == "detect" and report["test_samples"] > 10
    pytorch = report["pytorch"]
    assert 0 <= pytorch["map50_95"] <= pytorch["map50"] <= 1
    assert set(pytorch["per_class"]) == set(report["classes"])
    keys = {s["key"] for s in report["slices"]}
    assert keys == {"stream", "scenario", "road_type"}
    for key in keys:  # every test image lands in exactly one slice per key
        in_key = [s["samples"] for s in report["slices"] if s["key"] == key]
        assert sum(in_key) == report["test_samples"]
    assert report["groups"]["folds"], "per held-out group figures were asked for"
    onnx = {a["file"]: a for a in report["artifacts"]}
    assert set(onnx) == {"model.onnx", "model_dynamic_batch.onnx"}
    for artifact in onnx.values():
        assert artifact["status"] == "measured"
        assert abs(artifact["delta"]["map50"]) < 0.01
        assert artifact["inference_time_ms"] > 0
    figures = summary(report)
    assert figures["artifacts"]["onnx/model.onnx"]["map50"] == pytest.approx(
        onnx["model.onnx"]["metrics"]["map50"]
    )


def test_detector_calibration_is_fitted_on_validation_and_rechecked_on_artifacts(
    trained: Trained, tmp_path: Path
) -> None:
    result = exported_and_evaluated(trained, "yolo11n", tmp_path)
    fitted = result.calibration
    assert fitted is not None and fitted.method in calibration.METHODS
    summary_ = result.report["calibration"]
    assert summary_["test_ece_before"] is not None and summary_["test_ece_after"] is not None
    if fitted.method != "identity":  # the out-of-fold choice beat leaving scores alone
        chosen = summary_["validation_ece_by_method"][fitted.method]
        assert chosen <= summary_["validation_ece_by_method"]["identity"]
    again = ScoreCalibration.from_dict(fitted.as_dict())
    assert again.method == fitted.method and set(again.per_class) == set(fitted.per_class)
    for artifact in result.report["artifacts"]:
        assert artifact["metrics"]["ece_after"] == pytest.approx(
            summary_["test_ece_after"], abs=0.01
        )


def test_an_image_head_gets_classifier_metrics_and_plots(trained: Trained, tmp_path: Path) -> None:
    result = exported_and_evaluated(trained, "resnet18-binary", tmp_path)
    report = result.report
    assert report["task"] == "classify" and report["headline"] == "accuracy"
    pytorch = report["pytorch"]
    assert 0 <= pytorch["accuracy"] <= 1 and "confusion_matrix" in pytorch
    assert sum(map(sum, pytorch["confusion_matrix"]["counts"])) == report["test_samples"]
    assert result.calibration is not None and result.calibration.per_class == {}
    written = {p.name for p in plots.write_all(report, result.reliability, tmp_path / "plots")}
    assert {"pr_curve.png", "confusion_matrix.png", "reliability.png", "slices.png"} <= written
    assert (tmp_path / "plots" / "pr_curve.png").stat().st_size > 5000


def test_review_set_lists_disagreements_then_unsure_images(
    trained: Trained, tmp_path: Path
) -> None:
    import csv

    from modelyard.evaluation import review

    params = review.ReviewParams(top=5, unsure=3, threshold=0.3, margin=0.25)
    rows = review.build(trained.models["yolo11n"], trained.samples, params)
    reasons = [r["reason"] for r in rows]
    assert reasons.count("disagreement") <= 5 and reasons.count("unsure") <= 3
    assert reasons == sorted(reasons)  # disagreements first
    worst = [r["disagreement"] for r in rows if r["reason"] == "disagreement"]
    assert worst == sorted(worst, reverse=True) and all(w > 0 for w in worst)
    assert len({r["sample_id"] for r in rows}) == len(rows)
    table, _ = review.write(rows, tmp_path)
    with table.open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [w["sample_id"] for w in written] == [r["sample_id"] for r in rows]
    assert {w["field"] for w in written} == {"annotations"}
    assert all(w["corrected_label"] == "" for w in written)
    assert review.build(trained.models["yolo11n"], trained.samples, params) == rows  # seeded
