"""The formats table, the manifest's hashes and the parity table (pure logic)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from modelyard.errors import ConfigError
from modelyard.export import formats, report
from modelyard.export.config import PRECISIONS, ExportParams, ParityParams
from modelyard.export.manifest import sha256_path, size_bytes


@pytest.mark.parametrize("name", formats.names())
def test_every_format_has_a_backend_and_distinct_variants(name: str) -> None:
    fmt = formats.get(name)
    backend = fmt.load()
    for function in ("export", "open_runtime", "describe"):
        assert callable(getattr(backend, function)), f"{fmt.backend} lacks {function}"
    assert fmt.suffix.startswith(".") and fmt.layout in ("NCHW", "NHWC")
    assert len({v.name for v in fmt.variants}) == len(fmt.variants)
    assert {v.precision for v in fmt.variants} <= set(PRECISIONS)


def test_an_unknown_format_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"'tflit' is not known \(did you mean 'tflite'\?\)"):
        formats.get("tflit")


def test_params_reject_nonsense() -> None:
    with pytest.raises(ConfigError, match=r"export\.latency_runs"):
        ExportParams(latency_runs=0)
    with pytest.raises(ConfigError, match="int4"):
        ParityParams().tolerance("int4")
    with pytest.raises(ConfigError, match=r"export\.int8_scheme: 'float' is not one of dynamic"):
        ExportParams(int8_scheme="float")


def test_static_int8_needs_calibration_images() -> None:
    assert formats.Int8().scheme == "dynamic"
    with pytest.raises(ConfigError, match=r"needs calibration images; set export\.calibration"):
        formats.Int8(scheme="static")


def test_a_file_hashes_as_sha256_of_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights")
    assert sha256_path(path) == hashlib.sha256(b"weights").hexdigest()
    assert size_bytes(path) == 7


def test_a_package_hash_covers_names_and_bytes(tmp_path: Path) -> None:
    package = tmp_path / "model.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Manifest.json").write_text("{}")
    (package / "Data" / "weights.bin").write_bytes(b"abc")
    first = sha256_path(package)
    assert sha256_path(package) == first
    (package / "Data" / "weights.bin").write_bytes(b"abd")
    assert sha256_path(package) != first
    (package / "Data" / "weights.bin").rename(package / "Data" / "other.bin")
    assert sha256_path(package) not in (first,)
    assert size_bytes(package) == 5


def test_a_coreml_package_zips_to_the_same_bytes_every_time(tmp_path: Path) -> None:
    from modelyard.export.coreml import unzipped, zip_package

    package = tmp_path / "model.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Manifest.json").write_text("{}")
    (package / "Data" / "weights.bin").write_bytes(b"abc" * 1000)
    zip_package(package, tmp_path / "a.zip")
    os.utime(package / "Manifest.json", (0, 0))  # other times and another run: same bytes
    zip_package(package, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with unzipped(tmp_path / "a.zip") as folder:
        assert folder.name == "model.mlpackage"
        assert (folder / "Data" / "weights.bin").read_bytes() == b"abc" * 1000
    (package / "Data" / "weights.bin").write_bytes(b"abd" * 1000)
    zip_package(package, tmp_path / "c.zip")
    assert (tmp_path / "c.zip").read_bytes() != (tmp_path / "a.zip").read_bytes()


MANIFEST = {
    "format": "tflite",
    "task": "detect",
    "architecture": "rt-detrv2-s",
    "pytorch_inference_time_ms": 90.0,
    "threads": 2,
    "artifacts": [
        {"file": "model_fp32.tflite", "precision": "fp32", "size_bytes": 2_000_000,
         "inference_time_ms": 45.0,
         "parity": {"status": "passed", "reason": "", "measures": {"map50_delta": -0.001}}},
        {"file": "model.mlpackage", "precision": "fp16", "size_bytes": 1_000_000,
         "inference_time_ms": None,
         "parity": {"status": "skipped", "reason": "macOS only", "measures": {}}},
    ],
}  # fmt: skip


def test_the_parity_table_shows_speed_up_and_headline_measure() -> None:
    first, second = report.rows(MANIFEST)
    assert first["vs PyTorch"] == "2.00x" and first["headline"] == "-0.0010"
    assert first["parity"] == "passed" and first["size MB"] == "2.0"
    assert second["ms"] == "-" and second["parity"] == "skipped"
    assert second["reason"] == "macOS only"


def test_metrics_leave_skipped_parity_unscored() -> None:
    metrics = report.metrics(MANIFEST)
    assert metrics["model_fp32.tflite"]["parity_passed"] == 1
    assert metrics["model_fp32.tflite"]["map50_delta"] == -0.001
    assert metrics["model.mlpackage"]["parity_passed"] is None


def test_no_manifests_is_an_error_saying_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dvc repro export"):
        report.manifests(tmp_path)
