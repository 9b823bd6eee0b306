"""acceptance_gates.yaml ``rank`` and ``crop``: what the photo-selection models must show on
the test split. Keys are checked (an unknown or missing one is an error naming it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelyard.config import pick
from modelyard.errors import ConfigError, GateError

RANK_KEYS = (
    "min_selection_accuracy",
    "min_margin_over_highest_stage",
    "min_margin_over_random",
    "min_test_groups",
    "parity_output",
)
CROP_KEYS = (
    "min_mean_iou",
    "min_margin_over_centre_crop",
    "min_margin_over_whole_image",
    "min_test_crops",
    "parity_box",
)


def load(path: Path, section: str, keys: tuple[str, ...]) -> dict[str, float]:
    if not path.is_file():
        raise GateError(f"{path}: no acceptance gates file; a model cannot be judged without one")
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw = data.get(section)
    if not isinstance(raw, dict):
        raise GateError(f"{path}: no section '{section}'; add the {section} model's gates")
    where = f"{path}:{section}"
    try:
        for key in raw:
            pick({k: k for k in keys}, key, f"{where}: key")
    except ConfigError as exc:
        raise GateError(str(exc)) from exc
    out = {}
    for key in keys:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise GateError(f"{where}.{key}: expected a number, got {value!r}")
        out[key] = float(value)
    return out | {"version": float(data.get("version", 0))}
