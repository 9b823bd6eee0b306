"""``modelyard drift run|show``: the hourly drift job and its verdicts."""

from __future__ import annotations

import json
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
) -> None:
    """Judge one window for every bundle (cron it hourly; running a window again rewrites
    its one row). An alarm on a canary holds it; drift.auto_rollback withdraws it."""
    settings = drift.load(params)
    when = datetime.fromisoformat(at) if at else datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when -= timedelta(hours=hours_ago)
    start, end = job.window_ending_before(when, job.parse_window(window))
    with _database() as conn:
        results = job.run(conn, start, end, settings, actor)
    console = _console()
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
    for column in ("window (UTC)", "state", "drift score", "images", "devices", "features"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            f"{r['window_start']:%Y-%m-%d %H:%M}-{r['window_end']:%H:%M}",
            _state(r["stats"].get("state", "?")),
            "-" if r["drift_score"] is None else f"{r['drift_score']:.4f}", str(r["sample_count"]),
            str(r["stats"].get("devices", "")), _features(r["stats"]),
        )  # fmt: skip
    console.print(table)


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
