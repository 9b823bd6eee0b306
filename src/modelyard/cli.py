"""The ``modelyard`` command: thin wiring from arguments to library calls, and tables out."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.columns import Columns
from rich.console import Console
from rich.table import Table

from modelyard import (
    cli_evaluation,
    cli_export,
    cli_monitoring,
    cli_registry,
    cli_selection,
    cli_serving,
    cli_training,
    quiet,
)
from modelyard.config import Settings
from modelyard.datasets import inspect as inspect_mod
from modelyard.datasets.ingest import IngestReport, read_source, run_ingest
from modelyard.db import connection, migrate
from modelyard.db import datasets as datasets_db
from modelyard.db import samples as samples_db
from modelyard.db.connection import Connection
from modelyard.errors import ModelyardError, NotFoundError
from modelyard.files import write_json
from modelyard.quality import EXIT_GATE_FAILED
from modelyard.storage import ObjectStore

log = logging.getLogger("modelyard")
COUNT_ROWS = 8  # a count table's rows on the console (the JSON report holds them all)
# Piped output (logs, CI) gets wide tables instead of rich's 80-column default.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 160)
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)

app = typer.Typer(
    help="modelyard: labelled photos -> gated, multi-format model bundles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The PostgreSQL registry: start it, migrate it, connect to it.", no_args_is_help=True
)
dataset_app = typer.Typer(
    help="Create, list, inspect datasets and change their status.", no_args_is_help=True
)
ingest_app = typer.Typer(
    help="Check and load labelled images into a dataset.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(dataset_app, name="dataset")
app.add_typer(ingest_app, name="ingest")
app.command("train")(cli_training.train)
app.command("ui")(cli_training.ui)
app.command("tune")(cli_training.tune)
app.add_typer(cli_training.predictor_app, name="predictor")
app.add_typer(cli_selection.selection_app, name="selection")
app.command("embed")(cli_selection.embed)
app.add_typer(cli_selection.ranker_app, name="ranker")
app.add_typer(cli_selection.crop_app, name="crop")
app.add_typer(cli_export.export_app, name="export")
app.add_typer(cli_evaluation.gate_app, name="gate")
app.add_typer(cli_evaluation.model_app, name="model")
app.add_typer(cli_evaluation.review_app, name="review")
app.command("promote")(cli_registry.promote)
app.add_typer(cli_registry.bridge_app, name="bridge")
app.command("rollout")(cli_registry.rollout)
app.command("rollback")(cli_registry.rollback)
app.add_typer(cli_registry.bundles_app, name="bundles")
app.command("lineage")(cli_registry.lineage)
app.command("serve")(cli_serving.serve)
app.add_typer(cli_serving.keys_app, name="keys")
app.add_typer(cli_serving.device_app, name="device")
app.command("score")(cli_monitoring.score)
app.add_typer(cli_monitoring.drift_app, name="drift")

# Exit status of an ingest that kept the good records but rejected some.
EXIT_REJECTED = 3


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    quiet.install()


@contextmanager
def _conn(require_schema: bool = True) -> Iterator[Connection]:
    settings = Settings.from_env()
    with connection.session(connection.database_url(settings)) as conn:
        if require_schema:
            migrate.require_current(conn, migrate.discover(migrate.default_migrations_dir()))
        yield conn


def _store() -> ObjectStore:
    return ObjectStore(Settings.from_env().storage_url)


# ------------------------------------------------------------------ db


@db_app.command("up")
def db_up() -> None:
    """Start the embedded PostgreSQL (or check DATABASE_URL) and print the URL."""
    settings = Settings.from_env()
    url = connection.database_url(settings)
    with connection.session(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    where = "DATABASE_URL" if settings.database_url else f"embedded, {settings.pg_dir}"
    out.print(f"PostgreSQL {version['server_version'] if version else '?'} is up ({where})")
    out.print(url)


@db_app.command("down")
def db_down() -> None:
    """Stop the embedded PostgreSQL (data is kept)."""
    settings = Settings.from_env()
    stopped = connection.stop_embedded(settings.pg_dir)
    out.print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations, in order, each in its own transaction."""
    migrations = migrate.discover(migrate.default_migrations_dir())
    with _conn(require_schema=False) as conn:
        applied = migrate.migrate(conn, migrations)
    names = [mig.path.name for mig in applied]
    if len(names) > 3:  # a new database: the first and the last (`db status` lists each)
        out.print(f"applied {len(names)} migrations: {names[0]} ... {names[-1]}")
    else:
        for name in names:
            out.print(f"applied {name}")
    out.print(f"schema is current ({len(migrations)} migrations, {len(applied)} applied now)")


@db_app.command("status")
def db_status() -> None:
    """Show each migration: applied, pending, edited after applying, or missing its file."""
    migrations = migrate.discover(migrate.default_migrations_dir())
    with _conn(require_schema=False) as conn:
        states = migrate.status(conn, migrations)
    table = Table("version", "name", "state", "applied at")
    for s in states:
        colour = {"applied": "green", "pending": "yellow"}.get(s.state, "red")
        table.add_row(s.version, s.name, f"[{colour}]{s.state}[/]", s.applied_at or "")
    out.print(table)
    if any(s.state in ("edited", "missing-file") for s in states):
        raise typer.Exit(1)


@db_app.command("url")
def db_url() -> None:
    """Print the database URL (starting the embedded server if needed)."""
    out.print(connection.database_url(Settings.from_env()), soft_wrap=True)


@db_app.command("psql")
def db_psql() -> None:
    """Open psql on the database."""
    raise typer.Exit(connection.run_psql(connection.database_url(Settings.from_env())))


# ------------------------------------------------------------------ datasets


@dataset_app.command("create")
def dataset_create(
    policy: Annotated[str, typer.Option(help="Policy id the dataset trains models for.")],
    name: Annotated[str, typer.Option(help="Dataset name, unique within the policy.")],
    classes: Annotated[str, typer.Option(help="Ontology: class names, comma-separated.")] = "",
    exist_ok: Annotated[bool, typer.Option(help="Reuse a dataset of that name.")] = False,
) -> None:
    """Create a dataset (status collecting) with its class ontology."""
    class_list = [c.strip() for c in classes.split(",") if c.strip()]
    with _conn() as conn:
        try:
            ds = datasets_db.find(conn, f"{policy}/{name}") if exist_ok else None
        except NotFoundError:
            ds = None
        if ds is None:
            ds = datasets_db.create(conn, policy_id=policy, name=name, classes=class_list)
            verb = "created"
        else:
            ds = datasets_db.add_classes(conn, ds, class_list)
            verb = "exists:"
    out.print(
        f"{verb} dataset {ds.policy_id}/{ds.name} ({ds.id}), {ds.status}, "
        f"classes: {', '.join(ds.classes) or '(none)'}"
    )


@dataset_app.command("list")
def dataset_list() -> None:
    """List datasets with their status and sample counts."""
    with _conn() as conn:
        rows = datasets_db.list_all(conn)
    table = Table("id", "policy", "name", "status", "classes", "samples", "created")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["policy_id"],
            r["name"],
            r["status"],
            ", ".join(r["classes"]),
            str(r["samples"]),
            r["created_at"].isoformat(timespec="seconds"),
        )
    out.print(table)


@dataset_app.command("show")
def dataset_show(dataset: Annotated[str, typer.Argument(help="Name, policy/name or id.")]) -> None:
    """Show one dataset and the transitions open to it."""
    with _conn() as conn:
        ds = datasets_db.find(conn, dataset)
        allowed = datasets_db.allowed_transitions(conn, ds.status)
        n_samples = samples_db.count(conn, ds.id)
    for key, value in (
        ("id", ds.id),
        ("policy", ds.policy_id),
        ("name", ds.name),
        ("status", ds.status),
        ("can go to", ", ".join(allowed) or "nothing"),
        ("classes", ", ".join(ds.classes)),
        ("ontology", ds.ontology_version),
        ("samples", n_samples),
        ("created", ds.created_at),
        ("updated", ds.updated_at),
    ):
        out.print(f"{key:>10}  {value}")


@dataset_app.command("set-status")
def dataset_set_status(
    dataset: Annotated[str, typer.Argument(help="Name, policy/name or id.")],
    status: Annotated[str, typer.Argument(help="collecting | ready | training | archived")],
) -> None:
    """Move a dataset along collecting -> ready -> training -> archived."""
    with _conn() as conn:
        before = datasets_db.find(conn, dataset)
        after = datasets_db.set_status(conn, before, status)
    out.print(f"dataset {after.name}: {before.status} -> {after.status}")


@dataset_app.command("inspect")
def dataset_inspect(
    dataset: Annotated[str, typer.Argument(help="Name, policy/name or id.")],
    rows: Annotated[int, typer.Option(help="How many rows to show.")] = inspect_mod.FIRST_ROWS,
    report: Annotated[Path | None, typer.Option(help="JSON report path.")] = None,
) -> None:
    """Print the first rows, counts by class/split/review/group, and the invalid rows."""
    with _conn() as conn:
        ds = datasets_db.find(conn, dataset)
        data = inspect_mod.build_report(conn, _store(), ds, first=rows)
    path = report or Path("reports") / f"inspect_{ds.name}.json"
    write_json(path, data)
    _print_inspection(data)
    out.print(f"\nreport: {path}")


@dataset_app.command("split")
def dataset_split(
    dataset: Annotated[str, typer.Argument(help="Name, policy/name or id.")],
    ratios: Annotated[str, typer.Option(help="train,validation,test shares.")] = "0.7,0.15,0.15",
    seed: Annotated[
        int, typer.Option(help="Breaks ties between groups; same seed, same split.")
    ] = 0,
    by: Annotated[
        str, typer.Option(help="What must not straddle splits: group_key or metadata.KEY.")
    ] = "group_key",
    stratify: Annotated[
        str, typer.Option(help="Comma list: class, is_compliant, or metadata keys; 'none'.")
    ] = "class",
    reassign: Annotated[bool, typer.Option(help="Re-split samples that have a split.")] = False,
    report: Annotated[Path | None, typer.Option(help="JSON report path.")] = None,
) -> None:
    """Assign train/validation/test by group, balanced by class, deterministically."""
    from modelyard.datasets import splits  # pandas: kept off the CLI's start-up path

    keys = [] if stratify == "none" else [k.strip() for k in stratify.split(",") if k.strip()]
    request = splits.SplitRequest(
        ratios=splits.parse_ratios(ratios), seed=seed, reassign=reassign, by=by
    )
    with _conn() as conn:
        ds = datasets_db.find(conn, dataset)
        _, summary = splits.split_dataset(conn, ds, request, keys)
    path = report or Path("reports") / f"split_{ds.name}.json"
    write_json(path, summary)
    _print_split(summary)
    out.print(f"report: {path}")


@dataset_app.command("ready")
def dataset_ready(
    dataset: Annotated[str, typer.Argument(help="Name, policy/name or id.")],
    params: Annotated[Path, typer.Option(help="params.yaml with snapshot/validate.")] = Path(
        "params.yaml"
    ),
    suites: Annotated[Path, typer.Option(help="Folder of the GX suites.")] = Path("expectations"),
    report: Annotated[Path | None, typer.Option(help="JSON report path.")] = None,
) -> None:
    """Run the quality and leakage suites on the dataset; mark it ready only if they pass."""
    from modelyard.quality import readiness
    from modelyard.quality.validate import write_report

    snapshot_cfg, validate_cfg = readiness.load_settings(params)
    with _conn() as conn:
        ds = datasets_db.find(conn, dataset)
        result = readiness.check(conn, ds, snapshot_cfg, validate_cfg, suites)
        path = report or Path("reports") / f"quality_{ds.name}.json"
        write_report(result, path)
        for finding in [*result.critical, *result.warnings]:
            colour = "red" if finding.severity == "critical" else "yellow"
            first = finding.rows[0] if finding.rows else {}
            out.print(
                f"[{colour}]{finding.severity}[/] {finding.check}: {finding.unexpected_count} "
                f"row(s), first {first} -> {finding.fix}",
                soft_wrap=True,
            )
        if not result.passed:
            err.print(
                f"[red]dataset {ds.name} stays {ds.status}:[/] {len(result.critical)} critical "
                f"finding(s); see {path}"
            )
            raise typer.Exit(EXIT_GATE_FAILED)
        ds = datasets_db.set_status(conn, ds, "ready")
    out.print(
        f"[green]dataset {ds.name} is ready[/]: {result.rows_checked} rows passed "
        f"({len(result.warnings)} warnings); report {path}"
    )


# ------------------------------------------------------------------ ingest


def _ingest(
    fmt: str,
    path: Path,
    dataset: str,
    images_dir: Path | None,
    report_path: Path | None,
    add_classes: bool,
) -> None:
    source = read_source(fmt, path, images_dir)
    with _conn() as conn:
        ds = datasets_db.find(conn, dataset)
        if add_classes:
            ds = datasets_db.add_classes(conn, ds, source.declared_classes)
        report = IngestReport(dataset=ds.name, source_format=fmt, source_path=str(path))
        run_ingest(conn, _store(), ds, source, report)
    target = report_path or Path("reports") / f"ingest_{ds.name}_{fmt}.json"
    write_json(target, report.as_dict())
    _print_ingest(report)
    out.print(f"report: {target}")
    if report.rejections:
        raise typer.Exit(EXIT_REJECTED)


_DATASET = Annotated[str, typer.Option("--dataset", "-d", help="Name, policy/name or id.")]
_IMAGES = Annotated[Path | None, typer.Option(help="Folder the image paths are relative to.")]
_REPORT = Annotated[Path | None, typer.Option("--report", help="Where to write the JSON report.")]
_ADD = Annotated[bool, typer.Option(help="Add the source's class names to the ontology.")]


@ingest_app.command("coco")
def ingest_coco(
    path: Path,
    dataset: _DATASET,
    images_dir: _IMAGES = None,
    report: _REPORT = None,
    add_classes: _ADD = False,
) -> None:
    """COCO detection json (images found relative to it)."""
    _ingest("coco", path, dataset, images_dir, report, add_classes)


@ingest_app.command("yolo")
def ingest_yolo(
    path: Path,
    dataset: _DATASET,
    images_dir: _IMAGES = None,
    report: _REPORT = None,
    add_classes: _ADD = False,
) -> None:
    """YOLO folder: data.yaml, images/[split/], labels/[split/]."""
    _ingest("yolo", path, dataset, images_dir, report, add_classes)


@ingest_app.command("csv")
def ingest_csv(
    path: Path,
    dataset: _DATASET,
    images_dir: _IMAGES = None,
    report: _REPORT = None,
    add_classes: _ADD = False,
) -> None:
    """CSV manifest: one row per object, image_path,class,x,y,w,h,... columns."""
    _ingest("csv", path, dataset, images_dir, report, add_classes)


@ingest_app.command("sqlite-decisions")
def ingest_sqlite_decisions(
    path: Path, dataset: _DATASET, images_dir: _IMAGES = None, report: _REPORT = None
) -> None:
    """Review-decisions SQLite database (approve | crop | reject)."""
    _ingest("sqlite-decisions", path, dataset, images_dir, report, add_classes=False)


@ingest_app.command("legacy-csv")
def ingest_legacy_csv(
    sources: Annotated[list[Path], typer.Argument(help="Legacy decision CSV files.")],
    database: Annotated[
        Path, typer.Option("--out", help="The NEW version-3 decisions database to write.")
    ],
    report: _REPORT = None,
) -> None:
    """Backfill legacy decision CSVs into a NEW version-3 decisions database (the CSVs are
    never changed), for `modelyard ingest sqlite-decisions`. Columns are matched by name
    (filename/file/path, group/burst, project, action/decision, width, height, crop or
    crop_x1..crop_y2 in pixels or normalised, stage, label, timestamp); rows that break an
    integrity rule are left out and reported."""
    from modelyard.selection import legacy

    done = legacy.convert(sources, database)
    target = report or database.with_name(database.stem + "_backfill.json")
    write_json(target, done.as_dict())
    left_out = len({r["row_id"] for r in done.rejected})
    out.print(
        f"backfill: {done.written} rows written to {done.database} (version 3), "
        f"{left_out} rows left out"
    )
    for r in done.rejected[:10]:
        where = f"{r['file']}:{r['line']}"
        out.print(f"  {where}: {r['field']} = {r['value']}: {r['reason']} (fix: {r['fix']})")
    out.print(f"report: {target}")
    if done.rejected:
        raise typer.Exit(EXIT_REJECTED)


@ingest_app.command("corpus")
def ingest_corpus(
    path: Path,
    dataset: _DATASET,
    report: _REPORT = None,
    params: Annotated[Path, typer.Option(help="Params file (predictor.codecs).")] = Path(
        "params.yaml"
    ),
) -> None:
    """Canonical-6 JSONL encode rows (the quality predictor's corpus): one sample per
    source, codec, cq and frame, group_key = the source, label_value = VMAF."""
    from modelyard.config import load_params
    from modelyard.datasets import corpus
    from modelyard.datasets.ingest import canonical6
    from modelyard.training.predictor import config

    raw = load_params(params).get("predictor") if params.is_file() else None
    read = corpus.read([path], config.load(raw).codecs)
    with _conn() as conn:
        ds = datasets_db.find(conn, dataset)
        result = canonical6.ingest(conn, ds, read, str(path))
    target = report or Path("reports") / f"ingest_{ds.name}_{canonical6.FORMAT}.json"
    write_json(target, result.as_dict() | {"failed_encodes_dropped": read.failed_encodes})
    _print_ingest(result)
    if read.failed_encodes:
        out.print(f"{read.failed_encodes} failed encode(s) (exit_status != 0) dropped")
    out.print(f"report: {target}")
    if result.rejections:
        raise typer.Exit(EXIT_REJECTED)


# ------------------------------------------------------------------ demo data


@app.command("demo-data")
def demo_data(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write.")] = Path("data/demo"),
    count: Annotated[int, typer.Option(help="Number of images.")] = 300,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 192,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Generate the seeded demo detection dataset (COCO json + JPEG images)."""
    from modelyard.datasets import synthetic  # numpy and scikit-learn: only for this command

    cfg = synthetic.DemoConfig(count=count, size=size, seed=seed)
    path = synthetic.generate(out_dir, cfg)
    out.print(f"wrote {count} images ({size}x{size}, seed {seed}) and {path}")


# ------------------------------------------------------------------ output


def _print_ingest(report: IngestReport) -> None:
    out.print(
        f"[bold]ingest {report.source_format}[/] {report.source_path} -> {report.dataset}: "
        f"{report.records_seen} records, [green]{report.inserted} inserted[/], "
        f"{report.unchanged} unchanged, "
        f"[{'red' if report.rejected_records else 'green'}]{report.rejected_records} "
        f"rejected[/] ({report.seconds:.2f} s)"
    )
    if not report.rejections:
        return
    summary = Table("field", "rejections", title="rejections by field")
    for field_name, n in report.by_reason().items():
        summary.add_row(field_name, str(n))
    out.print(summary)
    detail = Table("record", "image", "field", "reason", "fix", title="rejected records")
    for r in report.rejections[:30]:
        detail.add_row(r.record, r.image_path or "", r.field, r.reason, r.fix)
    out.print(detail)
    if len(report.rejections) > 30:
        out.print(f"... and {len(report.rejections) - 30} more in the JSON report")


def _print_split(summary: dict[str, Any]) -> None:
    out.print(
        f"[bold]split {summary['dataset']}[/] ratios {summary['ratios']} seed {summary['seed']}: "
        f"{summary['changed']} samples changed split, "
        f"{summary['held_out_augmented']} augmented samples held out of test"
    )
    table = Table("split", "samples", "groups", "label balance (count, share of the label)")
    for name in ("train", "validation", "test"):
        part = summary["splits"][name]
        labels = ", ".join(
            f"{k} {v['count']} ({v['share']:.0%})" for k, v in part["labels"].items()
        )
        table.add_row(name, str(part["samples"]), str(part["groups"]), labels)
    table.add_row("unassigned", str(summary["splits"]["unassigned"]["samples"]), "", "")
    out.print(table)


def _print_inspection(data: dict[str, Any]) -> None:
    ds = data["dataset"]
    out.print(
        f"[bold]dataset {ds['policy_id']}/{ds['name']}[/] ({ds['id']}), {ds['status']}, "
        f"{data['samples']} samples, classes {', '.join(ds['classes'])}"
    )
    if data["first_rows"]:
        out.print(f"\n[bold]first {len(data['first_rows'])} rows[/] (repr of each value)")
        for i, row in enumerate(data["first_rows"]):
            fields = " ".join(f"{k}={v}" for k, v in row.items() if k != "id")
            out.print(f"[dim]{i:>3}[/] {fields}", soft_wrap=True)
    tables = []
    for key, title in (
        ("objects_by_class", "objects by class"),
        ("images_by_class", "images with class"),
        ("split", "split"),
        ("review_status", "review status"),
        ("is_compliant", "is_compliant"),
        ("group_key", "group_key"),
    ):
        table = Table(title, "n")
        counts = list(data["counts"][key].items())
        shown = counts if len(counts) <= COUNT_ROWS else counts[: COUNT_ROWS - 1]
        for value, n in shown:
            table.add_row(value, str(n))
        if len(shown) < len(counts):  # every value is in the JSON report
            rest = counts[len(shown) :]
            table.add_row(f"[dim]{len(rest)} more[/]", str(sum(n for _, n in rest)))
        tables.append(table)
    out.print(Columns(tables))
    invalid = data["invalid_rows"]
    if invalid:
        table = Table(
            "sample", "image", "field", "reason", "fix", title=f"invalid rows now: {len(invalid)}"
        )
        for r in invalid[:30]:
            table.add_row(r["sample_id"], r["image_path"] or "", r["field"], r["reason"], r["fix"])
        out.print(table)
    else:
        out.print("[green]invalid rows now: none[/] (every stored row passes the ingest checks)")
    for run in data["ingests"]:
        out.print(
            f"last ingest of {run['source_format']} {run['source_path']} at "
            f"{run['finished_at']}: {run['inserted']} inserted, {run['unchanged']} "
            f"unchanged, {run['rejected']} rejected"
        )


def main() -> None:
    try:
        app()
    except ModelyardError as exc:
        err.print(f"[red]error:[/] {exc}")
        sys.exit(1)
