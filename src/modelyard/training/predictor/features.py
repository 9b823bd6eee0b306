"""The predictor's inputs, from checked corpus rows: the quality features, the encode's size
and bitrate, its cq and its encoding time. Sizes and times enter as logarithms (they span
orders of magnitude); the bitrate only where every row says how long its clip is."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from modelyard.datasets.corpus import EncodeRow

BASE = (
    "cq",
    "log_enc_bytes",
    "log_enc_time_ms",
    "adm2",
    "vif_scale0",
    "vif_scale1",
    "vif_scale2",
    "vif_scale3",
    "motion2",
)
BITRATE = "log_kbps"


def names(rows: Sequence[EncodeRow]) -> tuple[str, ...]:
    """The features a codec's rows support: ``BASE``, plus the bitrate where all have it."""
    with_bitrate = bool(rows) and all(r.duration_s is not None for r in rows)
    return (*BASE, BITRATE) if with_bitrate else BASE


def matrix(rows: Sequence[EncodeRow], features: Sequence[str]) -> np.ndarray:
    """rows x features, float32."""
    return np.asarray([[_value(r, f) for f in features] for r in rows], dtype=np.float32)


def targets(rows: Sequence[EncodeRow]) -> np.ndarray:
    return np.asarray([r.vmaf for r in rows], dtype=np.float32)


def _value(row: EncodeRow, feature: str) -> float:
    if feature == "cq":
        return row.cq
    if feature == "log_enc_bytes":
        return math.log(row.enc_bytes)
    if feature == "log_enc_time_ms":
        return math.log1p(row.enc_time_ms)
    if feature == BITRATE:
        if row.duration_s is None:
            raise ValueError(f"{row.record}: no duration_s for the bitrate")
        return math.log(row.enc_bytes * 8 / 1000 / row.duration_s)
    if feature == "adm2":
        return row.adm2
    if feature == "motion2":
        return row.motion2
    if feature.startswith("vif_scale"):
        return row.vif[int(feature[-1])]
    raise KeyError(feature)
