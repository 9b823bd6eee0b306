"""Metrics against their reference implementations, on the same predictions."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from modelyard.evaluation import detection, metrics

CLASSES = ("car", "person", "sign")


def synthetic_detections(seed: int, images: int = 40) -> tuple[list[dict], list[dict]]:
    """Truth boxes, and predictions made from them with jitter, misses, class swaps and
    false alarms: a realistic spread of IoUs and scores (ties included)."""
    rng = np.random.default_rng(seed)
    preds, truth = [], []
    for _ in range(images):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 150, (n, 2))
        wh = rng.uniform(8, 60, (n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        labels = rng.integers(0, len(CLASSES), n)
        keep = rng.random(n) > 0.15
        jitter = rng.normal(0, rng.uniform(0.5, 8), (n, 4))
        moved = boxes + jitter
        p_boxes = np.concatenate(  # still a box: x1 < x2, y1 < y2
            [
                np.minimum(moved[:, :2], moved[:, 2:] - 1),
                np.maximum(moved[:, 2:], moved[:, :2] + 1),
            ],
            axis=1,
        )[keep]
        p_labels = np.where(rng.random(n) < 0.1, (labels + 1) % 3, labels)[keep]
        extra = int(rng.integers(0, 4))
        exy = rng.uniform(0, 150, (extra, 2))
        p_boxes = np.concatenate([p_boxes, np.concatenate([exy, exy + 20], axis=1)])
        p_labels = np.concatenate([p_labels, rng.integers(0, 3, extra)])
        scores = np.round(rng.uniform(0.01, 1.0, len(p_labels)), 2)  # ties on purpose
        preds.append({"boxes": p_boxes, "scores": scores, "labels": p_labels})
        truth.append({"boxes": boxes, "labels": labels})
    return preds, truth


def pycocotools_stats(preds: list[dict], truth: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b: np.ndarray) -> list[float]:
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    images = [{"id": i + 1, "width": 256, "height": 256} for i in range(len(truth))]
    anns, dets = [], []
    for i, (t, p) in enumerate(zip(truth, preds, strict=True)):
        for box, label in zip(t["boxes"], t["labels"], strict=True):
            w = xywh(box)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(label) + 1,
                    "bbox": w,
                    "area": w[2] * w[3],
                    "iscrowd": 0,
                }
            )
        for box, label, score in zip(p["boxes"], p["labels"], p["scores"], strict=True):
            dets.append(
                {
                    "image_id": i + 1,
                    "category_id": int(label) + 1,
                    "bbox": xywh(box),
                    "score": float(score),
                }
            )
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c + 1, "name": n} for c, n in enumerate(CLASSES)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats, ev.eval["precision"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_agrees_with_pycocotools(seed: int) -> None:
    preds, truth = synthetic_detections(seed)
    stats, precision = pycocotools_stats(preds, truth)
    ours = detection.coco_map(preds, truth, len(CLASSES))
    assert ours.map50_95 == pytest.approx(stats[0], abs=1e-4)
    assert ours.map50 == pytest.approx(stats[1], abs=1e-4)
    for c in range(len(CLASSES)):
        theirs = precision[:, :, c, 0, 2]  # every IoU, every recall point, area all, 100 dets
        assert ours.per_class_ap[c] == pytest.approx(theirs[theirs > -1].mean(), abs=1e-4)
    assert 0.2 < ours.map50 < 0.95  # the data is neither trivial nor hopeless


def test_perfect_and_empty_predictions() -> None:
    _, truth = synthetic_detections(3, images=10)
    perfect = [
        {"boxes": t["boxes"], "scores": np.ones(len(t["labels"])), "labels": t["labels"]}
        for t in truth
    ]
    assert detection.coco_map(perfect, truth, 3).map50_95 == pytest.approx(1.0)
    empty = [
        {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, int)}
        for _ in truth
    ]
    result = metrics.detect(empty, truth, CLASSES, 0.5)
    assert result["map50"] == 0.0 and result["recall"] == 0.0


def test_operating_point_and_confusion_matrix() -> None:
    truth = [{"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), "labels": np.array([0, 1])}]
    preds = [
        {
            "boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]]),
            "scores": np.array([0.9, 0.8, 0.7]),
            "labels": np.array([0, 0, 2]),  # right, wrong class, a false alarm
        }
    ]
    result = metrics.detect(preds, truth, CLASSES, 0.5)
    assert result["precision"] == pytest.approx(1 / 3)
    assert result["recall"] == pytest.approx(1 / 2)
    counts = np.array(result["confusion_matrix"]["counts"])
    assert counts[0, 0] == 1 and counts[1, 0] == 1 and counts[3, 2] == 1
    assert counts.sum() == 3
    high = metrics.detect(preds, truth, CLASSES, 0.85)
    assert high["precision"] == 1.0 and high["recall"] == 0.5


def test_classify_agrees_with_sklearn() -> None:
    from sklearn import metrics as sk

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.uniform(0, 0.7, 200), 0, 1)
    result = metrics.classify(p, y, 0.5)
    assert result["auc"] == pytest.approx(sk.roc_auc_score(y, p))
    assert result["f1"] == pytest.approx(sk.f1_score(y, p >= 0.5))
    assert result["accuracy"] == pytest.approx(sk.accuracy_score(y, p >= 0.5))
    assert metrics.classify(p, np.ones(200), 0.5)["auc"] is None  # one class: no AUC


def test_regress_agrees_with_scipy() -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    y = rng.uniform(0, 5, 300)
    pred = y + rng.normal(0.2, 0.5, 300)
    result = metrics.regress(pred, y)
    assert result["plcc"] == pytest.approx(stats.pearsonr(pred, y).statistic)
    assert result["srocc"] == pytest.approx(stats.spearmanr(pred, y).statistic)
    assert result["mae"] == pytest.approx(np.abs(pred - y).mean())
    counts = [b["count"] for b in result["buckets"]]
    assert sum(counts) == 300 and len(counts) == 6
    assert all(b["bias"] == pytest.approx(0.2, abs=0.25) for b in result["buckets"] if b["count"])
