"""The gate report (``reports/gate.json``): the verdict, every check, the thresholds as
loaded, and the provenance a reviewer needs to trust it — the entry point and its argv, each
input with its sha256, the outputs, and the code's git state. Its JSON Schema is
``gate_report.schema.json`` beside this module (schema_version 1); ``validate`` checks a
report against it, and the stage validates what it writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from modelyard.errors import GateError
from modelyard.evaluation import gates
from modelyard.export.manifest import sha256_path
from modelyard.training.lineage import git_state

SCHEMA_VERSION = 1


def schema() -> dict[str, Any]:
    text = resources.files("modelyard.evaluation").joinpath("gate_report.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def validate(report: dict[str, Any]) -> None:
    import jsonschema

    try:
        jsonschema.validate(report, schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise GateError(f"gate report: {where}: {exc.message}") from exc


def provenance(
    entry_point: str,
    argv: Sequence[str],
    inputs: Sequence[Path],
    outputs: Sequence[Path],
    run_id: str | None,
) -> dict[str, Any]:
    missing = [p for p in inputs if not p.exists()]
    if missing:
        raise GateError(f"gate: input {missing[0]} is missing; run the stages before `gate`")
    sha, dirty = git_state(Path.cwd())
    return {
        "entry_point": entry_point,
        "argv": list(argv),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": sha,
        "git_dirty": dirty,
        "mlflow_run_id": run_id,
        "inputs": [{"path": p.as_posix(), "sha256": sha256_path(p)} for p in inputs],
        "outputs": [p.as_posix() for p in outputs],
    }


def build(
    loaded: gates.Gates, gates_file: Path, evaluation: dict[str, Any], origin: dict[str, Any]
) -> dict[str, Any]:
    rows = gates.check(loaded, evaluation)
    status, reasons = gates.verdict(rows)
    report = {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "summary": gates.status_line(status, reasons),
        "reasons": reasons,
        "task": loaded.task,
        "gates_file": {
            "path": gates_file.as_posix(),
            "sha256": sha256_path(gates_file),
            "version": loaded.version,
        },
        "thresholds": loaded.raw,
        "checks": rows,
        "provenance": origin,
    }
    validate(report)
    return report
