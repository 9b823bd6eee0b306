"""The known harmless library messages are hidden; every other warning still shows."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import pytest
import torch

from modelyard import quiet


def test_known_harmless_messages_are_hidden_and_others_kept() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.install()
        warnings.warn(
            "Converting a tensor to a Python boolean might cause the trace to be incorrect.",
            torch.jit.TracerWarning,
            stacklevel=1,
        )
        warnings.warn("The feature will be removed. Please remove usage of this function",
                      DeprecationWarning, stacklevel=1)  # fmt: skip
        warnings.warn("`torch.jit.trace` is deprecated. Please switch to `torch.compile` or "
                      "`torch.export`.", FutureWarning, stacklevel=1)  # fmt: skip
        warnings.warn("Checkpoint directory models/checkpoints exists and is not empty.",
                      UserWarning, stacklevel=1)  # fmt: skip
        warnings.warn("a real problem: the calibration set is empty", UserWarning, stacklevel=1)
        warnings.warn("Converting the weights to fp16 lost precision", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "a real problem: the calibration set is empty",
        "Converting the weights to fp16 lost precision",
    ]
    banner = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert not banner.isEnabledFor(logging.INFO) and banner.isEnabledFor(logging.WARNING)


def test_what_a_converter_prints_goes_to_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "tflite" / "converter.log"
    with quiet.printed_to(log):
        print("Saved artifact at '/tmp/x'. The following endpoints are available:")  # noqa: T201
    print("the stage's own line")  # noqa: T201
    assert "endpoints" in log.read_text()
    assert capsys.readouterr().out == "the stage's own line\n"


def test_progress_bars_go_to_the_log_and_warnings_still_reach_logging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "coreml" / "converter.log"
    with quiet.printed_to(log):
        print("Converting PyTorch Frontend ==> MIL Ops: 100%", file=sys.stderr)  # noqa: T201
        warnings.warn("a real problem: an op fell back to fp32", UserWarning, stacklevel=1)
    assert "MIL Ops" in log.read_text()
    assert "MIL Ops" not in capsys.readouterr().err
    assert any("an op fell back to fp32" in r.getMessage() for r in caplog.records)


def test_coremltools_notes_off_macos_are_hidden_and_its_other_warnings_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet.install()
    logger = logging.getLogger("coremltools")
    with caplog.at_level(logging.WARNING, logger="coremltools"):
        logger.warning(
            "Failed to load _MLModelProxy: No module named 'coremltools.libcoremlpython'"
        )
        logger.warning("Failed to load '_MLCPUComputeDeviceRemoteProxy'. Remote device ...")
        logger.warning("Torch version 2.14.1 has not been tested with coremltools. You may ...")
        logger.warning("scikit-learn version 1.9.1 is not supported. Minimum required version")
        logger.warning("Tuple detected at graph output. This will be flattened in the ...")
        logger.warning("Saving value type of int64 into a builtin type of int32, might lose")
    assert [r.getMessage() for r in caplog.records] == [
        "Saving value type of int64 into a builtin type of int32, might lose"
    ]


def test_what_native_code_writes_on_import_goes_to_the_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "noisy_native.py").write_text(
        "import os\nos.write(2, b'I0000 port.cc:153] oneDNN custom operations are on\\n')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    log = tmp_path / "converter.log"
    quiet.import_quietly("noisy_native", log)
    os.write(2, b"the stage's own error line\n")
    assert "oneDNN" in log.read_text()
    assert capfd.readouterr().err == "the stage's own error line\n"
    assert "noisy_native" in sys.modules
    with pytest.raises(ModuleNotFoundError):
        quiet.import_quietly("no_such_module_here", log)
