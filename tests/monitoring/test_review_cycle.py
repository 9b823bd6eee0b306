"""The review cycle's judging, picking and comparing (pure logic; the cycle on the database
is tested end to end in tests/registry/test_scoring.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from modelyard.errors import ConfigError
from modelyard.monitoring import review_cycle as cycle

AT = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _row(**over: Any) -> dict[str, Any]:
    base = {"sample_id": "s1", "image_path": "images/1.jpg", "split": "test",
            "metadata": {"phase": "pilot"}, "group_key": "site-01/cam-1", "scored_at": AT,
            "annotations": None, "is_compliant": None, "label_value": None, "score": 0.0,
            "outputs": {"boxes": []}}  # fmt: skip
    return base | over


def test_a_rating_is_judged_by_its_error_and_its_side_of_the_threshold() -> None:
    agree = cycle.judge("regress", _row(label_value=4.4, score=4.1), 4.0, 0.3)
    assert agree is not None and not agree["disagrees"]
    assert agree["disagreement"] == pytest.approx(0.3) and agree["closeness"] == pytest.approx(0.1)
    flip = cycle.judge("regress", _row(label_value=4.2, score=3.6), 4.0, 0.3)
    assert flip is not None and flip["disagrees"] and flip["closeness"] is None
    assert flip["counts"] == {"tp": 0, "fp": 0, "fn": 1}
    assert cycle.judge("regress", _row(label_value=None, score=3.0), 4.0, 0.3) is None


def test_a_classifier_probability_is_judged_against_its_label() -> None:
    wrong = cycle.judge("classify", _row(is_compliant=False, score=0.8), 0.5, 0.1)
    assert wrong is not None and wrong["disagrees"] and wrong["disagreement"] == pytest.approx(0.8)
    assert wrong["counts"] == {"tp": 0, "fp": 1, "fn": 0} and wrong["label"] is False


def test_detections_match_labelled_boxes_of_their_class() -> None:
    truth = {"objects": [{"class": "car", "bbox": [10, 10, 20, 20]},
                         {"class": "person", "bbox": [50, 50, 10, 20]}]}  # fmt: skip
    boxes = [
        {"xyxy": [11, 11, 30, 31], "class": "car", "score": 0.9},  # matches the car
        {"xyxy": [50, 50, 60, 70], "class": "car", "score": 0.7},  # the person's box, wrong class
        {"xyxy": [0, 0, 5, 5], "class": "car", "score": 0.45},  # below the threshold, near it
    ]
    found = cycle.judge("detect", _row(annotations=truth, outputs={"boxes": boxes}), 0.5, 0.1)
    assert found is not None and found["disagrees"]
    assert found["counts"] == {"tp": 1, "fp": 1, "fn": 1}
    assert found["disagreement"] == pytest.approx(0.7 + 1)
    assert found["closeness"] == pytest.approx(0.05)
    assert [p["class"] for p in found["prediction"]] == ["car", "car"]
    empty = cycle.judge("detect", _row(annotations={"objects": []}), 0.5, 0.1)
    assert empty is not None and not empty["disagrees"] and empty["counts"]["fn"] == 0


def _judged(n: int, wrong: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        label = 4.5
        score = 2.0 if i < wrong else 4.5
        found = cycle.judge("regress", _row(sample_id=f"s{i}", image_path=f"images/{i}.jpg",
                                            label_value=label, score=score), 4.0, 0.3)  # fmt: skip
        assert found is not None
        rows.append(found)
    return rows


def test_metrics_carry_standard_errors_and_a_comparison_says_which_way() -> None:
    before = {"model_version": "p/v1", "labelled": 400, "created_at": AT,
              "metrics": cycle.measure("regress", _judged(400, 120))}  # fmt: skip
    better = cycle.compare(cycle.measure("regress", _judged(400, 40)), before)
    assert better is not None and better["verdict"] == "improved"
    assert better["metrics"]["disagreement_rate"]["verdict"] == "improved"
    assert better["metrics"]["mae"]["verdict"] == "improved"
    same = cycle.compare(cycle.measure("regress", _judged(400, 118)), before)
    assert same is not None and same["verdict"] == "unchanged"
    worse = cycle.compare(cycle.measure("regress", _judged(400, 200)), before)
    assert worse is not None and worse["verdict"] == "worse"
    assert cycle.compare(cycle.measure("regress", _judged(10, 1)), None) is None


def test_the_review_set_takes_each_image_once_and_is_seeded() -> None:
    judged = _judged(30, 5)
    near = [cycle.judge("regress", _row(sample_id=f"n{i}", image_path=f"near/{i}.jpg",
                                        label_value=4.0, score=4.05), 4.0, 0.3)
            for i in range(8)]  # fmt: skip
    judged += [n for n in near if n is not None]
    # judged[0] is a top disagreement already; judged[20] was neither; new/x.jpg no sample
    drifted = [judged[0], judged[20], {"image_path": "new/x.jpg", "sample_id": "", "label": None}]
    params = cycle.CycleParams(top=3, near=4, drifted=5, seed=1)
    chosen = cycle.pick(judged, drifted, params)
    reasons = [c["reason"] for c in chosen]
    assert reasons == ["disagreement"] * 3 + ["near_threshold"] * 4 + ["drifted"] * 2
    assert len({c["image_path"] for c in chosen}) == len(chosen)
    assert chosen == cycle.pick(judged, drifted, params)
    other = cycle.pick(judged, drifted, cycle.CycleParams(top=3, near=4, drifted=5, seed=2))
    assert [c["image_path"] for c in other[3:7]] != [c["image_path"] for c in chosen[3:7]]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="--top"):
        cycle.CycleParams(top=-1)
    with pytest.raises(ConfigError, match="--band"):
        cycle.CycleParams(band=0)
