"""The predictor's pieces: LOSO folds of whole sources, the fold figures (PLCC raw and after
the logistic mapping, SROCC, RMSE), the features, and a seeded, deterministic MLP whose
normalisation comes from the rows it is trained on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from modelyard.datasets.corpus import EncodeRow
from modelyard.training.predictor import features, loso, model
from modelyard.training.predictor.config import PredictorParams


def row(src: str, frame: int, vmaf: float = 50.0, duration: float | None = 10.0) -> EncodeRow:
    return EncodeRow(
        record=f"c.jsonl:{frame}", src=src, codec="libx265", cq=30.0, enc_bytes=1e6,
        enc_time_ms=1500.0, frame_index=frame, vmaf=vmaf, adm2=0.9,
        vif=(0.5, 0.6, 0.7, 0.8), motion2=3.0, duration_s=duration,
    )  # fmt: skip


def corpus_of(counts: dict[str, int]) -> list[EncodeRow]:
    rows, frame = [], 0
    for src, n in counts.items():
        for _ in range(n):
            rows.append(row(src, frame))
            frame += 1
    return rows


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_folds_hold_out_whole_sources_even_a_big_one(seed: int) -> None:
    # one source with 500 rows among small ones: it is still held out whole, in one fold
    counts = {f"s{i}": 3 for i in range(8)} | {"huge": 500}
    rows = corpus_of(counts)
    folds = loso.folds(rows, 5, seed)
    assert len(folds) == 5
    held = [s for f in folds for s in f.held_out]
    assert sorted(held) == sorted(counts)  # every source held out exactly once
    assert sorted(len(f.held_out) for f in folds) == [1, 2, 2, 2, 2]
    for f in folds:
        train_sources = {rows[i].src for i in f.train}
        val_sources = {rows[i].src for i in f.val}
        assert val_sources == set(f.held_out)
        assert not train_sources & val_sources
        assert len(f.train) + len(f.val) == len(rows)
        if "huge" in f.held_out:
            assert len(f.val) >= 500


def test_folds_are_seeded() -> None:
    rows = corpus_of({f"s{i}": 2 for i in range(9)})
    assert loso.folds(rows, 5, 3) == loso.folds(rows, 5, 3)
    assert loso.folds(rows, 5, 3) != loso.folds(rows, 5, 4)


def test_fewer_sources_than_folds_is_refused() -> None:
    with pytest.raises(ValueError, match="4 distinct sources < 5 folds"):
        loso.folds(corpus_of({f"s{i}": 10 for i in range(4)}), 5, 0)


def test_scores_against_hand_computed_values() -> None:
    truth = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    exact = loso.scores(truth * 2 + 1, truth)
    assert exact.plcc == pytest.approx(1.0) and exact.srocc == pytest.approx(1.0)
    assert exact.rmse == pytest.approx(np.sqrt(np.mean((truth + 1) ** 2)))
    off = loso.scores(np.array([10.0, 30.0, 20.0, 40.0, 50.0]), truth)
    assert off.srocc == pytest.approx(0.9)  # one swapped pair of five: 1 - 6*2 / (5*24)
    assert off.rmse == pytest.approx(np.sqrt(200 / 5))
    flat = loso.scores(np.full(5, 3.0), truth)
    assert (flat.plcc, flat.srocc, flat.logistic_fitted) == (0.0, 0.0, False)


def test_the_logistic_mapping_straightens_a_monotone_curve() -> None:
    rng = np.random.default_rng(0)
    predicted = np.linspace(0, 100, 200)
    truth = 100 / (1 + np.exp(-(predicted - 50) / 8)) + rng.normal(0, 0.5, predicted.size)
    s = loso.scores(predicted, truth)
    assert s.logistic_fitted
    assert s.plcc < 0.98 < s.plcc_logistic  # raw PLCC is hurt by the curve, mapped is not


def test_features_with_and_without_bitrate() -> None:
    with_duration = [row("a", 0), row("a", 1)]
    assert features.names(with_duration)[-1] == features.BITRATE
    x = features.matrix(with_duration, features.names(with_duration))
    assert x.shape == (2, len(features.BASE) + 1)
    assert x[0, -1] == pytest.approx(np.log(1e6 * 8 / 1000 / 10.0))
    mixed = [row("a", 0), row("a", 1, duration=None)]
    assert features.names(mixed) == features.BASE


def test_training_is_deterministic_and_normalised_on_its_own_rows() -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(300, 4)) * [1, 10, 100, 1000]).astype(np.float32)
    y = (20 + 3 * x[:, 0] + 0.2 * x[:, 1]).astype(np.float32)
    params = PredictorParams(epochs=25, hidden=(16,))
    a, b = model.train(x, y, params), model.train(x, y, params)
    assert np.array_equal(model.predict(a, x), model.predict(b, x))
    np.testing.assert_allclose(a.x_mean.numpy(), x.mean(axis=0), rtol=1e-5)
    assert float(a.y_mean) == pytest.approx(float(y.mean()), rel=1e-5)
    assert np.corrcoef(model.predict(a, x), y)[0, 1] > 0.95
    other = model.train(x, y, dataclasses.replace(params, seed=5))
    assert not np.array_equal(model.predict(a, x), model.predict(other, x))


def test_training_leaves_torch_settings_as_they_were() -> None:
    # Lightning's deterministic=True switches torch's deterministic mode on for the process
    before = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    model.train(x, x[:, 0].copy(), PredictorParams(epochs=2, hidden=(4,)))
    assert (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()) == before
