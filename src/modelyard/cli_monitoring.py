"""``modelyard score``, ``modelyard drift run|show``: scoring with a released bundle, the
hourly drift job and its verdicts."""

from __future__ import annotations

import json
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from modelyard.cli_common import bridge as _bridge
from modelyard.cli_common import console as _console
from modelyard.cli_common import database as _database
from modelyard.db import bundles
from modelyard.db import drift as drift_db
from modelyard.monitoring import drift, job

drift_app = typer.Typer(help="Drift of live telemetry from the promotion reference.",
                        no_args_is_help=True)  # fmt: skip

COLOURS = {drift.OK: "green", drift.WARN: "yellow", drift.ALARM: "bold red",
           drift.INSUFFICIENT: "dim", drift.NO_REFERENCE: "magenta"}  # fmt: skip


def score(
    bundle: Annotated[str, typer.Option(help="POLICY/TIER (canary, production), POLICY/vN or id.")],
    images: Annotated[Path | None, typer.Option(help="A folder of images (searched deep).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Or a dataset's samples.")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split of --dataset.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="onnx or tflite.")] = "onnx",
    threshold: Annotated[
        float | None, typer.Option(help="Decision threshold (default: the bundle's).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per batch (and per transaction).")] = 16,
    threads: Annotated[int, typer.Option(help="Runtime threads.")] = 2,
    cache: Annotated[Path, typer.Option(help="Where bundles are unpacked.")] = Path(
        ".modelyard/scoring"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score images with a released bundle (the SDK's Scorer): one inference row per image
    and its latest score, which the drift job bins beside device telemetry."""
    from rich.progress import Progress

    from modelyard.config import Settings
    from modelyard.db import datasets as datasets_db
    from modelyard.errors import ConfigError
    from modelyard.monitoring import scoring
    from modelyard.sdk.scorer import Scorer
    from modelyard.storage import ObjectStore

    if (images is None) == (dataset is None):
        raise ConfigError("score: give --images DIR or --dataset NAME (one of them)")
    store = ObjectStore(Settings.from_env().storage_url)
    console = _console()
    with _database() as conn:
        row = scoring.resolve(conn, bundle)
        folder = scoring.fetch(store, row, cache.absolute(), fmt)
        scorer = Scorer(folder, fmt=fmt, threshold=threshold, threads=threads)
        if images is not None:
            items = scoring.from_folder(images)
        else:
            items = scoring.from_dataset(conn, store, datasets_db.find(conn, str(dataset)), split)
        with Progress(console=console, transient=True, disable=as_json) as bar:
            task = bar.add_task(f"scoring with {scorer.model_version}", total=len(items))
            summary = scoring.score(
                conn, scorer, row["policy_id"], items, batch_size=batch_size, total=len(items),
                progress=lambda done, _total: bar.update(task, completed=done),
            )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
        return
    latency = summary.as_dict()["latency_ms"]
    console.print(
        f"{summary.scored} images scored with {summary.bundle} ({scorer.task}, threshold "
        f"{scorer.threshold:g}): {summary.positive} decided positive; latency p50 "
        f"{latency['p50']} ms, p95 {latency['p95']} ms"
    )
    for source, why in summary.skipped:
        console.print(f"[yellow]skipped[/] {source}: {why}")


@drift_app.command("run")
def drift_run(
    window: Annotated[str, typer.Option(help="Window length: 30m, 1h, 1d.")] = "1h",
    at: Annotated[
        str | None, typer.Option(help="Judge the last whole window before this ISO time.")
    ] = None,
    hours_ago: Annotated[
        int, typer.Option(help="Judge the window before the hour this many hours ago.")
    ] = 0,
    params: Annotated[Path, typer.Option(help="params.yaml with a `drift` section.")] = Path(
        "params.yaml"
    ),
    actor: Annotated[str, typer.Option(help="Who acts, for the audit log.")] = "drift",
    windows: Annotated[
        int, typer.Option(help="Judge this many windows up to that one (a backfill), oldest first.")
    ] = 1,
) -> None:
    """Judge one window for every bundle (cron it hourly; running a window again rewrites
    its one row). An alarm on a canary holds it; drift.auto_rollback withdraws it (judged on
    the latest window of a backfill)."""
    from modelyard.errors import ConfigError

    if windows < 1:
        raise ConfigError(f"--windows {windows}: at least 1")
    settings = drift.load(params)
    when = datetime.fromisoformat(at) if at else datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when -= timedelta(hours=hours_ago)
    length = job.parse_window(window)
    start, end = job.window_ending_before(when, length)
    spans = [(start - k * length, end - k * length) for k in reversed(range(windows))]
    with _database() as conn, _database() if windows > 1 else nullcontext() as reader:
        judged = job.run_windows(conn, spans, settings, actor, reader=reader)
    console = _console()
    for (first, last), found in list(zip(spans, judged, strict=True))[:-1]:
        states = {s: sum(r.state == s for r in found) for s in (drift.ALARM, drift.WARN)}
        console.print(f"drift window {first:%Y-%m-%d %H:%M} - {last:%Y-%m-%d %H:%M} UTC: "
                      f"{len(found)} bundles, {states[drift.ALARM]} alarm, "
                      f"{states[drift.WARN]} warn")  # fmt: skip
    results = judged[-1]
    console.print(f"drift window {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC")
    table = Table()
    for column in ("bundle", "tier", "state", "drift score", "images", "features"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.label, r.tier or "-", _state(r.state),
            "-" if r.drift_score is None else f"{r.drift_score:.4f}", str(r.sample_count),
            _features(r.stats),
        )  # fmt: skip
    console.print(table)
    held = [r for r in results if r.held]
    for r in held:
        console.print(f"[bold red]held[/] {r.label} canary: rollouts refused while it stands")
    if held and settings.auto_rollback:
        from modelyard.registry.promote import rollback

        for r in held:
            policy = r.label.split("/")[0]
            with _bridge(actor, "rollback") as bridge:
                reason = f"drift alarm {start:%Y-%m-%d %H:%M}-{end:%H:%M}: {_features(r.stats)}"
                rollback(bridge, policy, "canary", reason)
            console.print(f"[bold red]withdrawn[/] {r.label} canary (drift.auto_rollback)")


@drift_app.command("show")
def drift_show(
    bundle: Annotated[str, typer.Argument(help="<policy>/v<N>, <policy>/canary or an id.")],
    last: Annotated[int, typer.Option(help="How many windows.")] = 24,
    as_json: Annotated[bool, typer.Option("--json", help="The rows as JSON.")] = False,
) -> None:
    """A bundle's drift windows, newest first: state, score and each feature's PSI/bound."""
    with _database() as conn:
        row = bundles.get(conn, bundle)
        rows = drift_db.live_rows(conn, row["id"], last)
    if as_json:
        print(json.dumps(rows, indent=2, default=str))  # noqa: T201
        return
    console = _console()
    console.print(f"[bold]{row['policy_id']}/v{row['bundle_version']}[/]: {len(rows)} windows")
    table = Table()
    for column in ("window (UTC)", "state", "drift score", "images", "devices", "expected",
                   "features"):  # fmt: skip
        table.add_column(column)
    for r in rows:
        table.add_row(
            f"{r['window_start']:%Y-%m-%d %H:%M}-{r['window_end']:%H:%M}",
            _state(r["stats"].get("state", "?")),
            "-" if r["drift_score"] is None else f"{r['drift_score']:.4f}", str(r["sample_count"]),
            str(r["stats"].get("devices", "")), _estimate(r["stats"]), _features(r["stats"]),
        )  # fmt: skip
    console.print(table)


def _estimate(stats: dict[str, Any]) -> str:
    """``precision 0.71 (ref 0.74, measured 0.69)``: the label-free estimate of the window."""
    e = stats.get("estimate")
    if not e or e.get("window") is None:
        return "-"
    name = e["metric"].removeprefix("expected_")
    ref = f"ref {e['reference']:.2f}" if e.get("reference") is not None else "ref -"
    measured = e.get("reference_measured")
    tail = f", measured {measured:.2f}" if measured is not None else ""
    return f"{name} {e['window']:.2f} ({ref}{tail})"


def _state(state: str) -> str:
    return f"[{COLOURS.get(state, 'white')}]{state}[/]"


def _features(stats: dict[str, Any]) -> str:
    """``brightness alarm 0.412>0.061`` for each judged feature, worst first."""
    features: dict[str, Any] = stats.get("features") or {}
    judged = [(k, v) for k, v in features.items() if v.get("psi") is not None]
    judged.sort(key=lambda kv: -drift.SEVERITY[kv[1]["state"]])
    parts = [f"{k} {v['state']} {v['psi']:.3f}>{v['bound']:.3f}" if v["state"] == drift.ALARM
             else f"{k} {v['state']}" for k, v in judged]  # fmt: skip
    mix: dict[str, Any] = stats.get("class_mix") or {}
    if mix.get("state") not in (None, drift.INSUFFICIENT):
        parts.append(f"class mix {mix['state']}")
    return ", ".join(parts) or "none judged"
