"""The canonical-6 corpus reader: aliases, dropped failed encodes, every bad row rejected by
file:line and field with the good rows kept, and discovery over CORPUS / CORPUS_ROOTS."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from modelyard.datasets import corpus, synthetic_corpus
from modelyard.datasets.synthetic_corpus import CodecSpec
from modelyard.errors import IngestError
from modelyard.training.predictor.config import KNOWN_CODECS

GOOD = {
    "src": "park_joy", "encoder": "libx265", "cq": 32, "enc_bytes": 412331,
    "enc_time_ms": 5120.4, "frame_index": 7, "vmaf": 81.2, "adm2": 0.93, "vif_scale0": 0.61,
    "vif_scale1": 0.83, "vif_scale2": 0.89, "vif_scale3": 0.92, "motion2": 4.1,
}  # fmt: skip


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_a_good_row_and_its_aliases(tmp_path: Path) -> None:
    aliased = {k: v for k, v in GOOD.items() if k not in ("vmaf", "encoder", "cq")}
    aliased |= {"vmaf_score": 70.0, "codec": "libx265", "crf": 40, "frame_index": 8}
    q_row = {**{k: v for k, v in GOOD.items() if k != "cq"}, "q": 44, "frame_index": 9}
    read = corpus.read([write(tmp_path / "c.jsonl", [GOOD, aliased, q_row])], KNOWN_CODECS)
    assert read.rejections == []
    assert [(r.vmaf, r.codec, r.cq) for r in read.rows] == [
        (81.2, "libx265", 32.0), (70.0, "libx265", 40.0), (81.2, "libx265", 44.0),
    ]  # fmt: skip
    assert read.rows[0].vif == (0.61, 0.83, 0.89, 0.92)
    assert read.files[0]["rows"] == 3 and len(read.files[0]["sha256"]) == 64


def test_a_failed_encode_is_dropped_not_rejected(tmp_path: Path) -> None:
    failed = {**GOOD, "exit_status": 1, "frame_index": 1}
    ok = {**GOOD, "exit_status": 0}
    read = corpus.read([write(tmp_path / "c.jsonl", [failed, ok])], KNOWN_CODECS)
    assert (len(read.rows), read.failed_encodes, read.rejections) == (1, 1, [])


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"vmaf": "high"}, "vmaf", "is not a number"),
        ({"adm2": float("nan")}, "adm2", "is not finite"),
        ({"vmaf": 120.0}, "vmaf", "outside [0, 100]"),
        ({"enc_bytes": -5}, "enc_bytes", "outside"),
        ({"encoder": "libx999"}, "encoder", "unknown codec 'libx999'"),
        ({"src": ""}, "src", "is not a name"),
        ({"motion2": None}, "motion2", "missing"),
        ({"frame_index": 2.5}, "frame_index", "not a whole number"),
        ({"vmaf": True}, "vmaf", "is not a number"),
    ],
)
def test_each_bad_row_is_rejected_by_line_and_field(
    tmp_path: Path, change: dict[str, object], field: str, reason: str
) -> None:
    bad = {**GOOD, "frame_index": 99, **change}
    read = corpus.read([write(tmp_path / "c.jsonl", [GOOD, bad])], KNOWN_CODECS)
    assert len(read.rows) == 1  # the good row is kept
    (rejected,) = read.rejections
    assert (rejected.record, rejected.field) == ("c.jsonl:2", field)
    assert reason in rejected.reason and rejected.fix


def test_unparsable_lines_and_duplicates(tmp_path: Path) -> None:
    read = corpus.read(
        [write(tmp_path / "c.jsonl", [GOOD, "{not json", "[1, 2]", GOOD])], KNOWN_CODECS
    )
    assert len(read.rows) == 1
    assert [(r.record, r.field) for r in read.rejections] == [
        ("c.jsonl:2", "(line)"), ("c.jsonl:3", "(line)"), ("c.jsonl:4", "src"),
    ]  # fmt: skip
    assert "repeats c.jsonl:1" in read.rejections[2].reason
    report = read.rejection_report()
    assert report["rejected"] == 3 and sum(report["by_reason"].values()) == 3


def test_a_missing_required_key_names_it(tmp_path: Path) -> None:
    row = {k: v for k, v in GOOD.items() if k != "vif_scale2"}
    (rejected,) = corpus.read([write(tmp_path / "c.jsonl", [row])], KNOWN_CODECS).rejections
    assert (rejected.field, rejected.reason) == ("vif_scale2", "missing")


def test_discovery_skips_missing_roots_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    write(tmp_path / "a" / "deep" / "x.jsonl", [GOOD])
    write(tmp_path / "b" / "y.jsonl", [GOOD])
    (tmp_path / "b" / "notes.txt").write_text("not a corpus")
    roots = f"{tmp_path / 'a'} {tmp_path / 'gone'} {tmp_path / 'b'}"
    with caplog.at_level(logging.WARNING, logger="modelyard.datasets.corpus"):
        found = corpus.discover({"CORPUS_ROOTS": roots})
    assert [p.name for p in found.files] == ["x.jsonl", "y.jsonl"]
    assert found.missing_roots == (str(tmp_path / "gone"),)
    assert f"corpus root {tmp_path / 'gone'} does not exist; skipped" in caplog.text


def test_corpus_forces_one_file_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "one.jsonl", [GOOD])
    found = corpus.discover({"CORPUS": str(path), "CORPUS_ROOTS": str(tmp_path / "ignored")})
    assert found.files == (path,) and found.forced
    with pytest.raises(IngestError, match=r"CORPUS=.*no such file"):
        corpus.discover({"CORPUS": str(tmp_path / "nope.jsonl")})
    assert corpus.discover({}).files == ()


def test_generated_corpus_reads_back_with_its_planted_faults(tmp_path: Path) -> None:
    spec = CodecSpec(name="libx264", sources=5, frames=2, failed_encodes=3, bad_rows=5)
    summary = synthetic_corpus.generate(tmp_path / "g.jsonl", [spec], seed=3)
    read = corpus.read([tmp_path / "g.jsonl"], KNOWN_CODECS)
    assert len(read.rows) == summary["codecs"]["libx264"]["rows"] == 5 * 8 * 2
    assert read.failed_encodes == 3
    assert sorted(r.field for r in read.rejections) == sorted(
        ["vmaf", "adm2", "encoder", "enc_bytes", "motion2"]
    )
    assert len({r.src for r in read.rows}) == 5
    assert all(r.duration_s for r in read.rows)
    again = synthetic_corpus.generate(tmp_path / "h.jsonl", [spec], seed=3)
    assert again["codecs"] == summary["codecs"]
    assert (tmp_path / "g.jsonl").read_bytes() == (tmp_path / "h.jsonl").read_bytes()
