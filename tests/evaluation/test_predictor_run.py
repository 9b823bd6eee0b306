"""A predictor run end to end on generated corpora: PASS / FAIL / insufficient-sources with
their reasons, ONNX for the passing codec only (agreeing with PyTorch), a failing codec's
old ONNX left byte for byte, cards whose Status block is replaced and whose notes are kept,
report.json against its pinned schema, synthetic smoke never PASS, and the exit codes of
``modelyard predictor train`` (with its MLflow runs)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.config import Settings
from modelyard.datasets import corpus, synthetic_corpus
from modelyard.db import stores
from modelyard.errors import IngestError
from modelyard.evaluation.model_card import STATUS_START
from modelyard.evaluation.predictor import card, gate, report
from modelyard.evaluation.predictor.run import Outcome, PredictorRequest, run
from modelyard.quality import EXIT_GATE_FAILED
from modelyard.tracking import Tracker
from modelyard.training.predictor import features
from modelyard.training.predictor.config import PredictorParams
from tests.conftest import MODELYARD

ROOT = Path(__file__).resolve().parents[2]
GATES = ROOT / "acceptance_gates.yaml"
EPOCHS = 40
# the demo's three codecs with 4 frames per encode instead of 12: the same verdicts, faster
SPECS = [dataclasses.replace(s, frames=4) for s in synthetic_corpus.PRESET]


def request_for(folder: Path, environ: dict[str, str], **changes: Any) -> PredictorRequest:
    params = PredictorParams(models=str(folder / "models"), reports=str(folder / "reports"))
    return PredictorRequest(params=params, gates=GATES, environ=environ, epochs=EPOCHS, **changes)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    synthetic_corpus.generate(path, SPECS, seed=0)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> dict[str, Any]:
    """Two runs into one folder: before the first, an 'old' libvvenc ONNX is planted; before
    the second, a person's notes are written into libvvenc's card."""
    folder = tmp_path_factory.mktemp("predictor")
    models = folder / "models"
    models.mkdir()
    old = b"an earlier libvvenc predictor; a failing run must not touch it"
    (models / "predictor_libvvenc.onnx").write_bytes(old)
    first = run(request_for(folder, {"CORPUS": str(corpus_file)}), None)
    card_path = card.path(models, "libvvenc")
    first_card = card_path.read_text()
    card_path.write_text(first_card.replace("This section is yours", "Ask the codec team first"))
    x265 = (models / "predictor_libx265.onnx").read_bytes()
    second = run(request_for(folder, {"CORPUS": str(corpus_file)}), None)
    return {"folder": folder, "first": first, "second": second, "old": old,
            "first_card": first_card, "x265_first": x265}  # fmt: skip


def by_codec(outcome: Outcome) -> dict[str, dict[str, Any]]:
    return {c["codec"]: c for c in outcome.report["codecs"]}


def test_one_passes_one_fails_one_has_too_few_sources(runs: dict[str, Any]) -> None:
    outcome = runs["first"]
    codecs = by_codec(outcome)
    assert {k: v["status"] for k, v in codecs.items()} == {
        "libx265": gate.PASS, "libvvenc": gate.FAIL, "libsvtav1": gate.INSUFFICIENT,
    }  # fmt: skip
    assert outcome.exit_code == EXIT_GATE_FAILED
    assert outcome.report["summary"] == {
        "n_pass": 1, "n_fail": 1, "n_insufficient": 1, "n_missing_rows": 0,
    }  # fmt: skip
    x265, vvenc, svt = codecs["libx265"], codecs["libvvenc"], codecs["libsvtav1"]
    assert x265["mean_plcc"] >= 0.95 and x265["plcc_spread"] <= 0.005
    assert x265["failure_reasons"] == []
    assert vvenc["mean_plcc"] < 0.95
    assert f"mean PLCC {vvenc['mean_plcc']:.4f} < 0.9500" in vvenc["failure_reasons"]
    assert svt["folds"] == [] and svt["n_distinct_sources"] == 4
    assert svt["failure_reasons"][0].startswith("insufficient-sources: 4 distinct source(s)")
    line = outcome.lines[[c["codec"] for c in outcome.report["codecs"]].index("libvvenc")]
    assert line == (
        f"libvvenc FAIL {vvenc['mean_plcc']:.4f} {vvenc['plcc_spread']:.4f} "
        f"{vvenc['n_rows_total']} 9"
    )
    assert "libsvtav1 insufficient-sources n/a n/a 128 4" in outcome.lines


def test_folds_hold_whole_sources_and_features_are_real(runs: dict[str, Any]) -> None:
    x265 = by_codec(runs["first"])["libx265"]
    assert len(x265["folds"]) == 5
    held = [s for f in x265["folds"] for s in f["held_out_sources"]]
    assert sorted(held) == [f"clip{i:02d}" for i in range(9)]
    assert all(f["n_train"] + f["n_val"] == x265["n_rows_total"] for f in x265["folds"])
    assert set(x265["features"]) >= {"cq", "adm2", "vif_scale0", "motion2", "log_enc_bytes",
                                     "log_kbps", "log_enc_time_ms"}  # fmt: skip


def test_only_the_passing_codec_gets_an_onnx_and_it_agrees_with_pytorch(
    runs: dict[str, Any], corpus_file: Path
) -> None:
    import onnxruntime as ort

    models = runs["folder"] / "models"
    x265 = by_codec(runs["first"])["libx265"]
    onnx = x265["onnx"]
    assert onnx["written"] and onnx["parity"]["status"] == "passed"
    assert onnx["parity"]["measures"]["max_output_delta"] < 1e-3
    path = Path(onnx["path"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == onnx["sha256"]
    assert not (models / "predictor_libsvtav1.onnx").exists()
    assert sorted(p.name for p in models.glob("*.staged")) == []
    metadata = json.loads(path.with_suffix(".json").read_text())
    assert metadata["features"] == x265["features"] and metadata["sha256"] == onnx["sha256"]
    # the file takes raw features, any batch, and predicts VMAF close to the truth
    rows = corpus.read([corpus_file], PredictorParams().codecs).of_codec("libx265")
    x = features.matrix(rows, metadata["features"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (predicted,) = session.run(None, {"features": x})
    assert predicted.shape == (len(rows),)
    assert np.corrcoef(predicted, features.targets(rows))[0, 1] > 0.99


def test_a_failing_codec_keeps_its_old_onnx_byte_for_byte(runs: dict[str, Any]) -> None:
    onnx = runs["folder"] / "models" / "predictor_libvvenc.onnx"
    assert onnx.read_bytes() == runs["old"]
    for outcome in (runs["first"], runs["second"]):
        assert by_codec(outcome)["libvvenc"]["onnx"] is None
        outputs = [o["path"] for o in outcome.report["run_provenance"]["outputs"]]
        assert onnx.as_posix() not in outputs


def test_reruns_are_deterministic(runs: dict[str, Any]) -> None:
    first, second = by_codec(runs["first"]), by_codec(runs["second"])
    for codec in first:
        assert first[codec]["folds"] == second[codec]["folds"]
    path = runs["folder"] / "models" / "predictor_libx265.onnx"
    assert path.read_bytes() == runs["x265_first"]


def test_card_status_is_replaced_and_notes_are_kept(runs: dict[str, Any]) -> None:
    models = runs["folder"] / "models"
    vvenc = card.path(models, "libvvenc").read_text()
    assert vvenc.count(STATUS_START) == 1
    reason = by_codec(runs["second"])["libvvenc"]["failure_reasons"][0]
    assert f"Status: Proposed (gate-failed: {reason}" in vvenc
    assert "Ask the codec team first" in vvenc
    assert vvenc.count("## Notes") == 1
    x265 = card.path(models, "libx265").read_text()
    assert "Status: Production (gate cleared)" in x265 and x265.count(STATUS_START) == 1
    svt = card.path(models, "libsvtav1").read_text()
    assert "Status: Proposed (gate-failed: insufficient-sources" in svt


def test_report_matches_its_schema_and_the_pinned_fields(
    runs: dict[str, Any], corpus_file: Path
) -> None:
    outcome = runs["second"]
    on_disk = json.loads(outcome.report_path.read_text())
    report.validate(on_disk)
    assert set(on_disk["gate"]) >= {"mean_plcc_threshold", "plcc_spread_max", "per_fold_min",
                                    "loso_fold_count", "adr"}  # fmt: skip
    assert set(on_disk["summary"]) == {"n_pass", "n_fail", "n_insufficient", "n_missing_rows"}
    assert set(on_disk["run_provenance"]) >= {"schema", "entrypoint", "argv", "args",
                                              "inputs", "outputs"}  # fmt: skip
    for entry in on_disk["codecs"]:
        assert set(entry) >= {"codec", "status", "mean_plcc", "plcc_spread", "mean_srocc",
                              "mean_rmse", "n_rows_total", "n_distinct_sources",
                              "failure_reasons", "folds"}  # fmt: skip
        for fold in entry["folds"]:
            assert set(fold) >= {"fold_index", "held_out_sources", "plcc", "srocc", "rmse",
                                 "n_train", "n_val"}  # fmt: skip
    (corpus_input,) = [i for i in on_disk["run_provenance"]["inputs"] if i["role"] == "corpus"]
    assert corpus_input["sha256"] == hashlib.sha256(corpus_file.read_bytes()).hexdigest()
    for output in on_disk["run_provenance"]["outputs"]:
        assert hashlib.sha256(Path(output["path"]).read_bytes()).hexdigest() == output["sha256"]
    log = Path(on_disk["log"])
    assert log.name.startswith("train_") and log.name.endswith("Z.log")
    assert "libvvenc: FAIL" in log.read_text()
    # the schema is strict: an unknown key or a status outside the four is refused
    broken = json.loads(json.dumps(on_disk))
    broken["codecs"][0]["status"] = "MAYBE"
    with pytest.raises(Exception, match="MAYBE"):
        report.validate(broken)


def test_synthetic_smoke_runs_end_to_end_and_never_passes(tmp_path: Path) -> None:
    outcome = run(request_for(tmp_path, {}, synthetic_smoke=True), None)
    assert outcome.report["synthetic_smoke"] is True
    assert outcome.exit_code == EXIT_GATE_FAILED
    statuses = [c["status"] for c in outcome.report["codecs"]]
    assert gate.PASS not in statuses and len(statuses) == 3
    for entry in outcome.report["codecs"]:
        assert entry["failure_reasons"][0] == gate.SMOKE_REASON
    # the learnable codec went the whole way, into the smoke folder, not the models folder
    smoke = tmp_path / "reports" / "smoke"
    assert (smoke / "predictor_libx265.onnx").is_file()
    smoke_card = card.path(smoke, "libx265").read_text()
    assert "Status: Proposed (gate-failed: synthetic-smoke" in smoke_card
    assert not (tmp_path / "models").exists()


def test_no_rows_is_an_error_unless_allow_empty(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="ALLOW_EMPTY=1"):
        run(request_for(tmp_path, {"CORPUS_ROOTS": str(tmp_path / "nowhere")}), None)
    outcome = run(
        request_for(tmp_path, {"CORPUS_ROOTS": str(tmp_path / "nowhere"), "ALLOW_EMPTY": "1"},
                    codecs=("libx264", "libvvenc")),
        None,
    )  # fmt: skip
    assert [c["status"] for c in outcome.report["codecs"]] == [gate.MISSING, gate.MISSING]
    assert outcome.report["summary"]["n_missing_rows"] == 2
    assert outcome.report["corpus"]["missing_roots"] == [str(tmp_path / "nowhere")]
    assert outcome.exit_code == EXIT_GATE_FAILED


def test_the_gate_can_read_the_logistic_plcc(tmp_path: Path, corpus_file: Path) -> None:
    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES.read_text().replace("plcc: raw", "plcc: logistic"))
    outcome = run(
        dataclasses.replace(request_for(tmp_path, {"CORPUS": str(corpus_file)},
                                        codecs=("libx265",)), gates=gates),
        None,
    )  # fmt: skip
    (entry,) = outcome.report["codecs"]
    assert outcome.report["gate"]["plcc"] == "logistic"
    assert entry["mean_plcc"] == pytest.approx(entry["mean_plcc_logistic"], abs=1e-6)


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MODELYARD, "predictor", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, check=False)  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres
def test_cli_exit_codes_and_mlflow_runs(
    cli_env: dict[str, str], tmp_path: Path, corpus_file: Path, db_url: str
) -> None:
    shutil.copy(GATES, tmp_path / "acceptance_gates.yaml")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    env = {**cli_env, "CORPUS": str(corpus_file)}
    passing = _cli(env, tmp_path, "train", "--codec", "libx265", "--epochs", str(EPOCHS))
    assert passing.returncode == 0, passing.stderr
    assert passing.stdout.splitlines()[1].startswith("libx265 PASS 0.99")
    mixed = _cli(env, tmp_path, "train", "--epochs", str(EPOCHS), "--report-out", "out/r.json")
    assert mixed.returncode == EXIT_GATE_FAILED, mixed.stderr
    assert "libvvenc: mean PLCC" in mixed.stdout
    assert "1 PASS, 1 FAIL, 1 insufficient-sources, 0 missing-rows" in mixed.stdout
    assert (tmp_path / "out" / "r.json").is_file()
    unknown = _cli(env, tmp_path, "train", "--codec", "libx999")
    assert unknown.returncode == 1 and "not a known codec" in unknown.stderr
    empty = _cli({**cli_env, "CORPUS_ROOTS": "missing"}, tmp_path, "train")
    assert empty.returncode == 1 and "ALLOW_EMPTY=1" in empty.stderr
    found = _cli(env, tmp_path, "discover")
    assert found.returncode == 0 and "libx265: 288 rows, 9 distinct sources" in found.stdout
    assert _cli({**cli_env, "CORPUS_ROOTS": "missing"}, tmp_path, "discover").returncode == 3
    # the same corpus loaded into a dataset, and trained from there
    subprocess.run([*MODELYARD, "dataset", "create", "--policy", "codec-lab", "--name",
                    "encodes", "--classes", "vmaf"], env=cli_env, cwd=tmp_path, check=True,
                   capture_output=True)  # fmt: skip
    loaded = subprocess.run([*MODELYARD, "ingest", "corpus", str(corpus_file), "--dataset",
                             "codec-lab/encodes"], env=cli_env, cwd=tmp_path, text=True,
                            capture_output=True, check=False)  # fmt: skip
    assert loaded.returncode == 0 and "704 inserted" in loaded.stdout, loaded.stdout
    from_db = _cli(cli_env, tmp_path, "train", "--dataset", "codec-lab/encodes",
                   "--codec", "libx265", "--epochs", str(EPOCHS))  # fmt: skip
    assert from_db.returncode == 0, from_db.stderr
    assert from_db.stdout.splitlines()[1] == passing.stdout.splitlines()[1]
    # every run tracked: a parent per invocation, a child per codec with its fold metrics
    uri = stores.mlflow_tracking_uri(Settings.from_env({"DATABASE_URL": db_url}))
    client = Tracker(uri, tmp_path / "mlruns").client
    experiment = client.get_experiment_by_name("predictor")
    children = client.search_runs([experiment.experiment_id], "tags.codec = 'libvvenc'")
    (vvenc,) = children
    assert vvenc.data.tags["status"] == "FAIL"
    assert len(client.get_metric_history(vvenc.info.run_id, "plcc")) == 5
    assert vvenc.data.tags["mlflow.parentRunId"]
    # the passing codec registered once (its ONNX was the same each run), the others never
    assert "libx265: registered predictor-libx265 version 1 (candidate)" in passing.stdout
    assert "already registered as predictor-libx265 version 1" in from_db.stdout
    (version,) = client.search_model_versions("name = 'predictor-libx265'")
    assert (
        version.tags["onnx_sha256"]
        == hashlib.sha256(
            (tmp_path / "models" / "predictor" / "predictor_libx265.onnx").read_bytes()
        ).hexdigest()
    )
    alias = client.get_model_version_by_alias("predictor-libx265", "candidate")
    assert str(alias.version) == "1"
    assert client.search_registered_models("name = 'predictor-libvvenc'") == []


def test_a_parity_failure_fails_the_codec_and_keeps_its_old_onnx(
    tmp_path: Path, corpus_file: Path
) -> None:
    # no difference at all allowed: the fp32 ONNX differs from PyTorch by about 1e-5 VMAF
    gates = tmp_path / "gates.yaml"
    gates.write_text(
        GATES.read_text()
        .replace("output: 0.001 ", "output: 0.0 ")
        .replace("metric: 0.0005 ", "metric: 0.0 ")
    )
    assert "output: 0.0 " in gates.read_text()
    old = tmp_path / "models" / "predictor_libx265.onnx"
    old.parent.mkdir()
    old.write_bytes(b"the predictor that is out there today")
    request = request_for(tmp_path, {"CORPUS": str(corpus_file)}, codecs=("libx265",))
    outcome = run(dataclasses.replace(request, gates=gates), None)
    (entry,) = outcome.report["codecs"]
    assert entry["status"] == gate.FAIL and outcome.exit_code == EXIT_GATE_FAILED
    assert entry["failure_reasons"][-1].startswith("ONNX parity: ")
    assert entry["onnx"]["written"] is False and entry["onnx"]["parity"]["status"] == "failed"
    assert old.read_bytes() == b"the predictor that is out there today"
    assert list(old.parent.glob("*.staged")) == []
    assert (
        "Status: Proposed (gate-failed: ONNX parity: "
        in card.path(old.parent, "libx265").read_text()
    )
