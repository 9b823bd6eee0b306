"""``modelyard export run`` (one format, as the DVC stage runs it) and ``modelyard export
show`` (the parity table of every exported format)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelyard.config import load_params
from modelyard.export import formats, report

if TYPE_CHECKING:
    from modelyard.export.run import ExportPaths

export_app = typer.Typer(
    help="Export the trained model (ONNX, TFLite, CoreML) and check it against PyTorch.",
    no_args_is_help=True,
)

STATUS_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


FormatOption = Annotated[str, typer.Option("--format", help=f"One of {formats.names()}.")]
ParamsOption = Annotated[Path, typer.Option(help="Params file.")]
ModelOption = Annotated[Path, typer.Option(help="train's output.")]
ConvertedOption = Annotated[Path, typer.Option(help="convert's output.")]
SnapshotOption = Annotated[Path, typer.Option(help="Snapshot folder.")]
OutOption = Annotated[Path | None, typer.Option(help="Artifacts folder.")]
MetricsOption = Annotated[Path | None, typer.Option(help="Metrics JSON.")]


@export_app.command("run")
def run(
    format_name: FormatOption,
    params: ParamsOption = Path("params.yaml"),
    model: ModelOption = Path("models/train"),
    converted: ConvertedOption = Path("data/converted"),
    snapshot: SnapshotOption = Path("data/snapshot"),
    out: OutOption = None,
    metrics: MetricsOption = None,
) -> None:
    """Export one format in this process and check it (paths default to dvc.yaml's)."""
    from modelyard import stages  # torch and the rest: only when a command runs

    paths = _paths(format_name, model, converted, snapshot, out, metrics)
    _print(Console(), [stages.export(load_params(params), format_name, paths)])


@export_app.command("verify")
def verify(
    format_name: FormatOption,
    params: ParamsOption = Path("params.yaml"),
    model: ModelOption = Path("models/train"),
    converted: ConvertedOption = Path("data/converted"),
    snapshot: SnapshotOption = Path("data/snapshot"),
    out: OutOption = None,
    metrics: MetricsOption = None,
) -> None:
    """Check the artifacts already exported (the same bytes) in their runtime and record the
    result: run on a Mac, CoreML's skipped parity becomes passed (or failed)."""
    from modelyard import stages

    paths = _paths(format_name, model, converted, snapshot, out, metrics)
    _print(Console(), [stages.verify_export(load_params(params), format_name, paths)])


def _paths(
    format_name: str, model: Path, converted: Path, snapshot: Path, out: Path | None,
    metrics: Path | None,
) -> ExportPaths:  # fmt: skip
    """The stage's paths, the format's folders by default as dvc.yaml names them."""
    from modelyard.export.run import ExportPaths
    from modelyard.export.samples import SamplePaths

    return ExportPaths(
        model=model,
        samples=SamplePaths(converted=converted, snapshot=snapshot),
        out=out or Path("models/export") / format_name,
        metrics=metrics or Path("reports/export") / f"{format_name}.json",
    )


@export_app.command("show")
def show(
    folder: Annotated[Path, typer.Argument(help="The export folder.")] = Path("models/export"),
) -> None:
    """Print the parity table of every format exported under FOLDER."""
    _print(Console(width=None if sys.stdout.isatty() else 160), report.manifests(folder))


def _print(console: Console, manifests: list[dict[str, object]]) -> None:
    for manifest in manifests:
        _, label = report.HEADLINE[str(manifest["task"])]
        table = Table(
            title=f"{manifest['format']}: {manifest['architecture']}, PyTorch "
            f"{manifest['pytorch_inference_time_ms']} ms at batch 1, {manifest['threads']} threads"
        )
        for column in ("artifact", "precision", "size MB", "ms", "vs PyTorch", label, "parity"):
            table.add_column(column, justify="left" if column == "artifact" else "right")
        reasons = []
        for row in report.rows(manifest):
            style = STATUS_STYLE.get(row["parity"], "")
            table.add_row(
                row["artifact"], row["precision"], row["size MB"], row["ms"], row["vs PyTorch"],
                row["headline"], f"[{style}]{row['parity']}[/]",
            )  # fmt: skip
            if row["reason"]:
                reasons.append(f"{row['artifact']}: {row['reason']}")
        console.print(table)
        for reason in reasons:
            console.print(f"  {reason}")
