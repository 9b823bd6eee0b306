"""Acceptance gates, the gate report's schema, and the model card's Status block."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard.errors import ConfigError, GateError
from modelyard.evaluation import gate_report, gates, model_card

ROOT = Path(__file__).resolve().parents[2]


def evaluation(map50: float = 0.8, night_samples: int = 12) -> dict[str, Any]:
    """An evaluation as the evaluate stage writes it (only what gates and the card read)."""
    measured = {
        "status": "measured",
        "size_bytes": 10,
        "sha256": "a" * 64,
        "precision": "fp32",
        "inference_time_ms": 5.0,
        "export_parity": "passed",
    }
    return {
        "schema_version": 1,
        "task": "detect",
        "architecture": "rt-detrv2-s",
        "classes": ["car", "sign"],
        "headline": "map50",
        "test_samples": 40,
        "validation_samples": 40,
        "pytorch": {
            "samples": 40,
            "map50": map50,
            "map50_95": 0.4,
            "precision": 0.7,
            "recall": 0.75,
            "f1": 0.72,
            "threshold": 0.5,
            "ece_before": 0.12,
            "ece_after": 0.03,
            "per_class": {},
        },
        "slices": [
            {
                "key": "scenario",
                "value": "day",
                "samples": 28,
                "small": False,
                "metrics": {"map50": map50},
            },
            {
                "key": "scenario",
                "value": "night",
                "samples": night_samples,
                "small": night_samples < 10,
                "metrics": {"map50": map50 - 0.1},
            },
        ],
        "groups": None,
        "calibration": {
            "method": "platt",
            "validation_ece_by_method": {"platt": 0.02},
            "per_class": ["car"],
            "test_ece_before": 0.12,
            "test_ece_after": 0.03,
        },
        "artifacts": [
            {
                **measured,
                "format": "onnx",
                "file": "model.onnx",
                "delta": {"map50": 0.0},
                "metrics": {"map50": map50, "ece_after": 0.03},
            },
            {
                **measured,
                "format": "tflite",
                "file": "model_int8.tflite",
                "precision": "int8",
                "delta": {"map50": -0.02},
                "metrics": {"map50": map50 - 0.02, "ece_after": 0.04},
            },
            {
                **measured,
                "format": "coreml",
                "file": "model.mlpackage",
                "status": "skipped",
                "reason": "CoreML predicts on macOS only",
            },
        ],
    }


def report_for(ev: dict[str, Any], gates_file: Path) -> dict[str, Any]:
    origin = gate_report.provenance("pipelines/gate.py", ["gate"], [gates_file], [], None)
    return gate_report.build(gates.load(gates_file, ev["task"]), gates_file, ev, origin)


@pytest.fixture
def gates_file(tmp_path: Path) -> Path:
    path = tmp_path / "acceptance_gates.yaml"
    path.write_text((ROOT / "acceptance_gates.yaml").read_text())
    return path


def test_a_good_model_passes_every_gate_and_skips_what_cannot_run(gates_file: Path) -> None:
    report = report_for(evaluation(), gates_file)
    assert report["status"] == "PASS" and report["reasons"] == []
    assert report["summary"] == "Production-ready (all gates cleared)"
    skipped = {c["id"] for c in report["checks"] if c["verdict"] == "skipped"}
    assert "parity:coreml:map50_delta" in skipped  # never passed
    assert len({c["id"] for c in report["checks"]}) == len(report["checks"])  # ids unique


def test_a_gate_that_must_fail_fails_and_the_card_says_why(
    gates_file: Path, tmp_path: Path
) -> None:
    ev = evaluation(map50=0.55, night_samples=3)
    report = report_for(ev, gates_file)
    assert report["status"] == "FAIL"
    failed = {c["id"] for c in report["checks"] if c["verdict"] == "fail"}
    assert failed == {
        "overall:pytorch:map50",
        "slice_samples:scenario=night:samples",
        "slice:scenario=night:map50",
    }
    assert "pytorch map50 0.55 (needs >= 0.6)" in report["reasons"]
    card = tmp_path / "model_card.md"
    model_card.write(card, model_card.render(ev, report, {"policy_id": "p"}))
    status = model_card.status(card.read_text())
    assert status.startswith("Proposed (gate-failed: ")
    assert "pytorch map50 0.55 (needs >= 0.6)" in status
    assert "scenario=night samples 3 (needs >= 5)" in status


def test_status_block_is_replaced_and_notes_are_kept(gates_file: Path, tmp_path: Path) -> None:
    card = tmp_path / "model_card.md"
    failing = evaluation(map50=0.3)
    model_card.write(card, model_card.render(failing, report_for(failing, gates_file), {}))
    text = card.read_text().replace("This section is yours", "Only for daytime dashcams")
    card.write_text(text)
    passing = evaluation()
    model_card.write(card, model_card.render(passing, report_for(passing, gates_file), {}))
    text = card.read_text()
    assert text.count("Status:") == 1 and text.count(model_card.STATUS_START) == 1
    assert model_card.status(text) == "Production-ready (all gates cleared)"
    assert "Only for daytime dashcams" in text and "gate-failed" not in text


def test_parity_and_calibration_gates(gates_file: Path) -> None:
    ev = evaluation()
    ev["artifacts"][1]["delta"]["map50"] = -0.05  # int8 beyond tflite's 0.03
    ev["artifacts"][0]["metrics"]["ece_after"] = 0.2
    report = report_for(ev, gates_file)
    failed = {c["id"] for c in report["checks"] if c["verdict"] == "fail"}
    assert failed == {"parity:tflite:map50_delta", "calibration:onnx/model.onnx:ece_after"}


def test_logo_gates_judge_the_groups_when_asked(gates_file: Path) -> None:
    ev = evaluation()
    report = report_for(ev, gates_file)
    assert any(c["kind"] == "logo" and c["verdict"] == "skipped" for c in report["checks"])
    ev["groups"] = {
        "key": "group_key",
        "folds": [
            {"key": "group_key", "value": g, "samples": 10, "small": False, "metrics": {"map50": v}}
            for g, v in (("site-1", 0.9), ("site-2", 0.8), ("site-3", 0.35))
        ],
    }
    rows = {c["metric"]: c for c in report_for(ev, gates_file)["checks"] if c["kind"] == "logo"}
    assert rows["map50_mean"]["value"] == pytest.approx(0.6833, abs=1e-3)
    assert rows["map50_mean"]["verdict"] == "pass"
    assert rows["map50_spread"]["verdict"] == "fail"  # 0.55 > 0.35
    assert rows["map50_worst_fold"]["verdict"] == "fail"  # 0.35 < 0.4


def test_report_matches_its_schema_and_a_broken_one_does_not(gates_file: Path) -> None:
    report = report_for(evaluation(), gates_file)
    gate_report.validate(report)
    assert report["provenance"]["inputs"][0]["sha256"] == report["gates_file"]["sha256"]
    broken = copy.deepcopy(report)
    broken["checks"][0]["verdict"] = "maybe"
    with pytest.raises(GateError, match="checks/0/verdict"):
        gate_report.validate(broken)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"overall": {"mAP50": {"min": 0.5}}}, "did you mean 'map50'"),
        ({"overall": {"map50": {"least": 0.5}}}, "bound: 'least' is not known"),
        ({"overall": {"map50": {"min": "high"}}}, "expected a number"),
        ({"slices": {}}, "did you mean 'per_slice'"),
    ],
)
def test_a_malformed_gates_file_is_refused_by_name(
    tmp_path: Path, edit: dict[str, Any], message: str
) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "detect": edit}))
    with pytest.raises((GateError, ConfigError), match=message):
        gates.load(path, "detect")


def test_missing_file_or_task_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="no acceptance gates file"):
        gates.load(tmp_path / "none.yaml", "detect")
    path = tmp_path / "gates.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "detect": {}}))
    with pytest.raises(GateError, match="no section 'classify'"):
        gates.load(path, "classify")
