"""The known harmless library messages are hidden; every other warning still shows."""

from __future__ import annotations

import logging
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
