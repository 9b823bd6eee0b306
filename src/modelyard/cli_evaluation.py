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

from modelyard.config import load_params
from modelyard.errors import NotFoundError

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
    from modelyard import stages  # torch and the rest: only when a command runs
    from modelyard.registry.register import RegisterInputs

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


review_app = typer.Typer(
    help="Review the model's disagreements with the labels; write corrections back.",
    no_args_is_help=True,
)


@review_app.command("build")
def review_build(
    top: Annotated[int, typer.Option(help="The largest disagreements to list.")] = 20,
    unsure: Annotated[int, typer.Option(help="Random images scored near the threshold.")] = 10,
    margin: Annotated[float, typer.Option(help="How near counts as unsure.")] = 0.1,
    splits: Annotated[str, typer.Option(help="Comma-separated splits to look at.")] = (
        "test,validation"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the random sample.")] = 0,
    params: Annotated[Path, typer.Option(help="Params file (evaluate.threshold).")] = Path(
        "params.yaml"
    ),
    model: Annotated[Path, typer.Option(help="train's output.")] = Path("models/train"),
    converted: Annotated[Path, typer.Option(help="convert's output.")] = Path("data/converted"),
    snapshot: Annotated[Path, typer.Option(help="Snapshot folder.")] = Path("data/snapshot"),
    out: Annotated[Path, typer.Option(help="Folder for review.csv / .json.")] = Path(
        "reports/review"
    ),
) -> None:
    """List the images to look at again: the model's biggest disagreements with their labels
    and a random sample of those it was unsure of. Fill in corrected_label, then apply."""
    from modelyard.config import section
    from modelyard.evaluation import review
    from modelyard.evaluation.config import EvaluateParams
    from modelyard.export.samples import SamplePaths

    threshold = section(load_params(params), "evaluate", EvaluateParams).threshold
    chosen = review.ReviewParams(
        top=top, unsure=unsure, margin=margin, threshold=threshold, seed=seed,
        splits=tuple(s.strip() for s in splits.split(",") if s.strip()),
    )  # fmt: skip
    rows = review.build(model, SamplePaths(converted=converted, snapshot=snapshot), chosen)
    table, full = review.write(rows, out)
    counts = {r: sum(row["reason"] == r for row in rows) for r in review.REASONS}
    _console().print(
        f"{len(rows)} images to review ({counts['disagreement']} disagreements, "
        f"{counts['unsure']} unsure): {table} (and {full.name}). Fill in corrected_label, then "
        "`modelyard review apply` it to a new dataset version."
    )


@review_app.command("apply")
def review_apply(
    file: Annotated[Path, typer.Argument(help="The worked review.csv.")],
    dataset: Annotated[str, typer.Option(help="The dataset the review was built from.")],
    name: Annotated[str, typer.Option(help="Name of the new version.")],
) -> None:
    """Write the corrections of FILE into a new version of DATASET (a full copy named NAME
    that points at its parent); the original rows stay as they were."""
    from modelyard import stages
    from modelyard.datasets import review as apply_review
    from modelyard.db import datasets

    with stages.database() as conn:
        parent = datasets.find(conn, dataset)
        done = apply_review.apply(conn, parent, name, file)
    console = _console()
    console.print(
        f"dataset {parent.policy_id}/{done.name} (version {done.version}, from {parent.name}): "
        f"{done.samples} samples, corrected {done.corrected}, unreviewed {done.unreviewed}, "
        f"rejected {len(done.rejected)}; status collecting: run "
        f"`modelyard dataset ready {done.name}`, then point params base.dataset at it"
    )
    for reason in done.rejected:
        console.print(f"  rejected: {reason}")


@review_app.command("cycle")
def review_cycle(
    bundle: Annotated[str, typer.Option(help="POLICY/vN, POLICY/TIER (canary, production) or id.")],
    top: Annotated[int, typer.Option(help="The largest disagreements to list.")] = 20,
    near: Annotated[int, typer.Option(help="Random images scored near the threshold.")] = 10,
    drifted: Annotated[int, typer.Option(help="Random images of warn/alarm windows.")] = 10,
    band: Annotated[
        float | None,
        typer.Option(help="Half-width of 'near the threshold' (default 0.3 rating, 0.1 else)."),
    ] = None,
    by: Annotated[str, typer.Option(help="Comma-separated metadata keys to slice by.")] = ",".join(
        ("phase", "scenario", "stream", "road_type", "split", "captured_day")
    ),
    seed: Annotated[int, typer.Option(help="Seed of the random samples.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for the report and review set.")] = Path(
        "reports"
    ),
) -> None:
    """Compare a released model version's scored outputs (`modelyard score`) with the human
    labels: disagreement by slice, metrics against the last version, and a review set
    (disagreements, near-threshold and drifted-window images) for `review apply`."""
    from modelyard.cli_common import database
    from modelyard.monitoring import review_cycle as cycle
    from modelyard.monitoring.scoring import resolve

    params = cycle.CycleParams(
        top=top, near=near, drifted=drifted, band=band, seed=seed,
        keys=tuple(k.strip() for k in by.split(",") if k.strip()),
    )  # fmt: skip
    with database() as conn:
        done = cycle.run(conn, resolve(conn, bundle), params, out)
    report = done.report
    console = _console()
    against = report["against"]
    verdict = (f"against {against['model_version']}: [bold]{against['verdict']}[/]"
               if against else "the policy's first cycle")  # fmt: skip
    console.print(
        f"{report['model_version']}: {report['labelled']} labelled samples, disagreement rate "
        f"{report['metrics']['disagreement_rate']['value']:.3f}; {verdict}"
    )
    table = Table(title="metrics")
    for column in ("metric", "value", "± se", "previous", "verdict"):
        table.add_column(column)
    compared = (against or {}).get("metrics", {})
    for name, m in report["metrics"].items():
        c = compared.get(name, {})
        table.add_row(
            name, _number(m["value"]), _number(m["se"]), _number(c.get("previous")),
            c.get("verdict", ""),
        )  # fmt: skip
    console.print(table)
    worst = sorted((s for s in report["slices"] if not s["small"]),
                   key=lambda s: -s["metrics"]["disagreement_rate"])[:5]  # fmt: skip
    for s in worst:
        console.print(f"  {s['key']}={s['value']}: disagreement "
                      f"{s['metrics']['disagreement_rate']:.3f} (n={s['samples']})")  # fmt: skip
    review = report["review_set"]
    console.print(
        f"review set: {review['rows']} images {review['by_reason']} in {review['path']}; "
        f"report {done.json_path} and {done.markdown}"
    )


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.4g}"
