"""The predictor's gate: thresholds from acceptance_gates.yaml, honest verdicts with their
figures, and a synthetic-smoke verdict that can never be PASS."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import GateError
from modelyard.evaluation.predictor import gate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def the_gate() -> gate.PredictorGate:
    return gate.load(ROOT / "acceptance_gates.yaml")


def test_the_project_gate_is_the_one_the_issue_sets(the_gate: gate.PredictorGate) -> None:
    assert (the_gate.mean_plcc_threshold, the_gate.plcc_spread_max, the_gate.per_fold_min,
            the_gate.loso_fold_count, the_gate.plcc) == (0.95, 0.005, 0.95, 5, "raw")  # fmt: skip
    assert (ROOT / the_gate.adr).is_file()


def test_folds_at_085_fail_with_every_reason(the_gate: gate.PredictorGate) -> None:
    verdict = gate.judge([0.85, 0.86, 0.84, 0.85, 0.852], the_gate)
    assert verdict.status == gate.FAIL
    assert verdict.reasons == (
        "mean PLCC 0.8504 < 0.9500",
        "PLCC spread 0.0200 > 0.0050",
        "folds 0, 1, 2, 3, 4 PLCC < 0.9500 (lowest: fold 2 at 0.8400)",
    )


@pytest.mark.parametrize(
    ("folds", "reasons"),
    [
        ([0.99, 0.99, 0.99, 0.99, 0.99], ()),
        ([0.95, 0.95, 0.95, 0.952, 0.955], ()),  # at the bounds: passes
        ([0.97, 0.97, 0.97, 0.97, 0.9649], ("PLCC spread 0.0051 > 0.0050",)),
        ([0.953, 0.953, 0.953, 0.953, 0.949], ("fold 4 PLCC 0.9490 < 0.9500",)),
        ([0.99, 0.99, 0.99, 0.99], ("4 LOSO folds != 5",)),
    ],
)
def test_each_bound_alone(
    the_gate: gate.PredictorGate, folds: list[float], reasons: tuple[str, ...]
) -> None:
    verdict = gate.judge(folds, the_gate)
    assert verdict.reasons == reasons
    assert verdict.status == (gate.PASS if not reasons else gate.FAIL)


def test_a_high_mean_does_not_hide_one_weak_fold(the_gate: gate.PredictorGate) -> None:
    verdict = gate.judge([0.999, 0.999, 0.999, 0.999, 0.90], the_gate)
    assert verdict.status == gate.FAIL
    assert "fold 4 PLCC 0.9000 < 0.9500" in verdict.reasons


def test_synthetic_smoke_never_passes(the_gate: gate.PredictorGate) -> None:
    verdict = gate.smoke(gate.judge([0.999] * 5, the_gate))
    assert verdict.status == gate.FAIL
    assert verdict.reasons[0] == gate.SMOKE_REASON
    assert gate.smoke(gate.insufficient(3, the_gate)).status == gate.INSUFFICIENT


def test_insufficient_and_missing_say_why(the_gate: gate.PredictorGate) -> None:
    assert gate.insufficient(4, the_gate).reasons == (
        "insufficient-sources: 4 distinct source(s) < 5 needed for the LOSO folds",
    )
    assert gate.missing("libx264").status == gate.MISSING


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("version: 1\n", "no section 'predictor'"),
        ("version: 1\npredictor: {mean_plcc_threshold: 0.9}\n", "'plcc_spread_max' is missing"),
        ("version: 1\npredictor: {mean_plcc: 0.9}\n", "'mean_plcc' is not known"),
        (
            "version: 1\npredictor: {mean_plcc_threshold: high, plcc_spread_max: 0.1, "
            "per_fold_min: 0.9, loso_fold_count: 5, plcc: raw, adr: x, parity: {}}\n",
            "mean_plcc_threshold: expected a number",
        ),
        (
            "version: 1\npredictor: {mean_plcc_threshold: 0.9, plcc_spread_max: 0.1, "
            "per_fold_min: 0.9, loso_fold_count: 1, plcc: raw, adr: x, parity: {}}\n",
            "loso_fold_count: expected an integer >= 2",
        ),
        (
            "version: 1\npredictor: {mean_plcc_threshold: 0.9, plcc_spread_max: 0.1, "
            "per_fold_min: 0.9, loso_fold_count: 5, plcc: cooked, adr: x, parity: {}}\n",
            "'cooked' is not known",
        ),
    ],
)
def test_a_malformed_gate_is_an_error_naming_the_key(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text(body)
    with pytest.raises(GateError, match=message):
        gate.load(path)
