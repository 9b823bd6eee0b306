"""Canonical-6 rows into a dataset (group_key = source, label_value = VMAF) and back: the
same rows train the same predictor from the dataset as from the file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from modelyard.datasets import corpus, synthetic_corpus
from modelyard.datasets.ingest import canonical6
from modelyard.db import datasets as datasets_db
from modelyard.db import ingests as ingests_db
from modelyard.db import samples as samples_db
from modelyard.db.connection import Connection
from modelyard.db.datasets import Dataset
from modelyard.errors import StateError
from modelyard.evaluation.predictor.run import PredictorRequest, run
from modelyard.training.predictor.config import KNOWN_CODECS, PredictorParams

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgres


@pytest.fixture
def encodes(conn: Connection) -> Dataset:
    return datasets_db.create(conn, policy_id="codec-lab", name="encodes", classes=["vmaf"])


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    spec = synthetic_corpus.CodecSpec(name="libx265", sources=5, frames=2, bad_rows=2,
                                      failed_encodes=1)  # fmt: skip
    synthetic_corpus.generate(tmp_path / "c.jsonl", [spec], seed=1)
    return tmp_path / "c.jsonl"


def test_rows_become_samples_grouped_by_source(
    conn: Connection, encodes: Dataset, corpus_file: Path
) -> None:
    read = corpus.read([corpus_file], KNOWN_CODECS)
    report = canonical6.ingest(conn, encodes, read, str(corpus_file))
    assert report.inserted == len(read.rows) == 5 * 8 * 2
    assert report.rejected_records == 2  # the planted faults, by line and field
    assert {r.field for r in report.rejections} == {"vmaf", "adm2"}
    samples = samples_db.all_rows(conn, encodes.id)
    assert {s["group_key"] for s in samples} == {f"clip{i:02d}" for i in range(5)}
    first = next(s for s in samples if s["image_path"] == "encode/libx265/clip00/cq22/frame0")
    row = next(r for r in read.rows if (r.src, r.cq, r.frame_index) == ("clip00", 22, 0))
    assert first["label_value"] == pytest.approx(row.vmaf)
    assert first["metadata"]["adm2"] == row.adm2
    (recorded,) = ingests_db.latest_per_source(conn, encodes.id)
    assert recorded["source_format"] == "canonical6" and recorded["rejected"] == 2
    # and back, value for value
    back = sorted((r.as_dict() for r in canonical6.rows_of(samples)), key=str)
    assert back == sorted((r.as_dict() for r in read.rows), key=str)


def test_reingest_is_unchanged_and_changed_values_are_refused(
    conn: Connection, encodes: Dataset, corpus_file: Path
) -> None:
    read = corpus.read([corpus_file], KNOWN_CODECS)
    canonical6.ingest(conn, encodes, read, "c.jsonl")
    again = canonical6.ingest(conn, encodes, read, "c.jsonl")
    assert (again.inserted, again.unchanged) == (0, len(read.rows))
    changed = dataclasses.replace(read.rows[0], vmaf=read.rows[0].vmaf + 1)
    clash = corpus.Corpus(rows=[changed])
    result = canonical6.ingest(conn, encodes, clash, "edited.jsonl")
    (problem,) = result.rejections
    assert problem.field == "src" and "append-only" in problem.fix
    bad = corpus.Corpus(rows=[dataclasses.replace(read.rows[0], src="../etc", frame_index=77)])
    (problem,) = canonical6.ingest(conn, encodes, bad, "bad.jsonl").rejections
    assert "cannot name a sample" in problem.reason
    assert samples_db.count(conn, encodes.id) == len(read.rows)


def test_a_dataset_that_is_not_collecting_refuses(
    conn: Connection, encodes: Dataset, corpus_file: Path
) -> None:
    ready = datasets_db.set_status(conn, encodes, "ready")
    with pytest.raises(StateError, match="collecting"):
        canonical6.ingest(conn, ready, corpus.read([corpus_file], KNOWN_CODECS), "c.jsonl")


def test_the_dataset_trains_the_same_predictor_as_the_file(
    conn: Connection, encodes: Dataset, tmp_path: Path
) -> None:
    path = tmp_path / "corpus.jsonl"
    synthetic_corpus.generate(path, [synthetic_corpus.CodecSpec(name="libx265", frames=2)])
    canonical6.ingest(conn, encodes, corpus.read([path], KNOWN_CODECS), str(path))
    from_db = canonical6.corpus_of(conn, encodes)
    assert from_db.files[0]["path"].startswith("dataset codec-lab/encodes")

    def request(name: str, **extra: object) -> PredictorRequest:
        params = PredictorParams(models=str(tmp_path / name), reports=str(tmp_path / name))
        gates = ROOT / "acceptance_gates.yaml"
        environ = {"CORPUS": str(path)}
        return PredictorRequest(params=params, gates=gates, environ=environ, epochs=20, **extra)  # type: ignore[arg-type]

    by_file = run(request("file"), None).report
    by_dataset = run(request("db", corpus=from_db), None).report
    assert by_file["codecs"][0]["folds"] == by_dataset["codecs"][0]["folds"]
    assert by_dataset["run_provenance"]["inputs"][0]["sha256"] == from_db.files[0]["sha256"]
    files = json.loads(json.dumps(by_dataset["corpus"]["files"]))
    assert files == [from_db.files[0]["path"]]
