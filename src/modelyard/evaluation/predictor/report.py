"""report.json of a predictor run: the gate as loaded, the corpus, every codec's verdict with
its folds, the counts, and the provenance (entry point, argv, each input and output with its
sha256). ``report.schema.json`` beside this module pins its shape; ``validate`` checks a
report against it, and the run validates what it writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from modelyard.errors import GateError
from modelyard.evaluation.predictor.gate import FAIL, INSUFFICIENT, MISSING, PASS

SCHEMA_VERSION = 1
SCHEMA_ID = "modelyard/predictor_report/1"


def schema() -> dict[str, Any]:
    text = resources.files("modelyard.evaluation.predictor").joinpath("report.schema.json")
    loaded: dict[str, Any] = json.loads(text.read_text())
    return loaded


def validate(report: dict[str, Any]) -> None:
    import jsonschema

    try:
        jsonschema.validate(report, schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise GateError(f"predictor report: {where}: {exc.message}") from exc


def summary(codecs: Sequence[dict[str, Any]]) -> dict[str, int]:
    statuses = [c["status"] for c in codecs]
    return {
        "n_pass": statuses.count(PASS),
        "n_fail": statuses.count(FAIL),
        "n_insufficient": statuses.count(INSUFFICIENT),
        "n_missing_rows": statuses.count(MISSING),
    }


def table(codecs: Sequence[dict[str, Any]]) -> list[str]:
    """One line per codec: codec, status, mean PLCC, spread, rows, sources."""

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    return [
        f"{c['codec']} {c['status']} {number(c['mean_plcc'])} {number(c['plcc_spread'])} "
        f"{c['n_rows_total']} {c['n_distinct_sources']}"
        for c in codecs
    ]
