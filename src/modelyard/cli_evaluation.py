"""``modelyard gate show`` (the gate report as a table), ``modelyard model register`` (the
register stage, also for a gate-failed bundle) and ``modelyard model show``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from modelyard import stages
from modelyard.config import load_params
from modelyard.errors import NotFoundError
from modelyard.registry.register import RegisterInputs

gate_app = typer.Typer(help="The acceptance gates' verdict.", no_args_is_help=True)
model_app = typer.Typer(help="Registered model versions (MLflow).", no_args_is_help=True)

VERDICT_STYLE = {"pass": "green", "fail": "bold red", "skipped": "yellow"}


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise NotFoundError(f"{path}: not written yet; run `dvc repro` up to its stage")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@gate_app.command("show")
def show_gate(
    report: Annotated[Path, typer.Argument(help="The gate report.")] = Path("reports/gate.json"),
    all_checks: Annotated[bool, typer.Option("--all", help="Passed checks too.")] = False,
) -> None:
    """Print the verdict and the checks (by default those that did not pass, and a count)."""
    data = _read(report)
    console = _console()
    checks = data["checks"]
    shown = checks if all_checks else [c for c in checks if c["verdict"] != "pass"]
    table = Table(title=f"{data['status']}: {data['summary']}")
    for column in ("gate", "subject", "metric", "value", "bound", "verdict", "why"):
        table.add_column(column)
    for c in shown:
        value = "n/a" if c["value"] is None else f"{c['value']:.4g}"
        style = VERDICT_STYLE[c["verdict"]]
        table.add_row(
            c["kind"], c["subject"], c["metric"], value, f"{c['bound']} {c['threshold']:g}",
            f"[{style}]{c['verdict']}[/]", c["reason"],
        )  # fmt: skip
    passed = sum(c["verdict"] == "pass" for c in checks)
    if shown:
        console.print(table)
    else:
        console.print(table.title)
    console.print(f"{passed} of {len(checks)} checks passed ({report}; the card: model_card.md)")


@model_app.command("register")
def register(
    params: Annotated[Path, typer.Option(help="Params file.")] = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="JSON to write.")] = Path("reports/register.json"),
) -> None:
    """Register the evaluated bundle (paths as in dvc.yaml), gate passed or not; only a
    passed gate gets the `candidate` alias."""
    inputs = RegisterInputs(
        model=Path("models/train"), exports=Path("models/export"),
        evaluation=Path("models/evaluate"), gate_report=Path("reports/gate.json"),
        card=Path("reports/model_card.md"), train_report=Path("reports/train.json"),
        snapshot=Path("data/snapshot/snapshot.json"),
    )  # fmt: skip
    stages.register(load_params(params), inputs, out)
    show_model(out)


@model_app.command("show")
def show_model(
    report: Annotated[Path, typer.Argument(help="register's JSON.")] = Path(
        "reports/register.json"
    ),
) -> None:
    """Print the registered version: name, version, gate, alias and where its files are."""
    data = _read(report)
    console = _console()
    alias = data["alias"] or "none (the gate did not pass)"
    console.print(
        f"registered [bold]{data['name']}[/] version [bold]{data['version']}[/]: gate "
        f"{data['status']}, alias {alias}\n  files: {data['source']}\n"
        f"  verify_ai_ml_models row {data['model_row_id']}"
    )
