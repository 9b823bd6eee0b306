"""Release commands: ``modelyard promote``, ``bridge sync|serve``, ``rollout``, ``rollback``,
``bundles list|show|history`` and ``lineage``. The bridge and its model runtime are imported
only when a command needs them."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from modelyard.cli_common import POLICY_ASTS
from modelyard.cli_common import bridge as _bridge
from modelyard.cli_common import console as _console
from modelyard.cli_common import database as _database
from modelyard.config import Settings
from modelyard.db import bundles, stores
from modelyard.db.connection import Connection
from modelyard.errors import ConfigError
from modelyard.storage import ObjectStore
from modelyard.tracking import ARTIFACT_ROOT, Tracker

if TYPE_CHECKING:
    from modelyard.registry.bridge import SyncReport

log = logging.getLogger(__name__)

bridge_app = typer.Typer(
    help="Converge the bundle table to the MLflow registry.", no_args_is_help=True
)
bundles_app = typer.Typer(
    help="Bundles devices are served from, and their audit log.", no_args_is_help=True
)

EXIT_REFUSED = 4  # a sync that refused or failed a version (the others were done)

ActorOption = Annotated[
    str | None, typer.Option(help="Who acts, for the audit log (default: the login name).")
]
AstOption = Annotated[Path, typer.Option(help="Folder of <policy_id>.json policy ASTs.")]


def _report(report: SyncReport) -> None:
    console = _console()
    for line in report.changes:
        console.print(f"  {line}")
    for line in report.refused:
        console.print(f"  [bold red]refused[/] {line}")
    for line in report.failed:
        console.print(f"  [bold red]failed[/] {line}")
    if not report.changes and report.ok:
        console.print("  nothing to change: the bundle table matches the registry")
    if not report.ok:
        raise typer.Exit(EXIT_REFUSED)


def promote(
    model: Annotated[str, typer.Argument(help="Registered model, e.g. demo-policy-detect.")],
    version: Annotated[str, typer.Argument(help="Version number, or an alias (candidate).")],
    to: Annotated[str, typer.Option("--to", help="canary | production")],
    weight: Annotated[
        int | None,
        typer.Option(help="Share of devices, 0-100 (default: canary 10, production 100)."),
    ] = None,
    targeting: Annotated[str | None, typer.Option(help="JSON object of device attributes.")] = None,
    force: Annotated[
        bool, typer.Option(help="Promote although the gate did not pass (needs --reason).")
    ] = False,
    reason: Annotated[
        str | None, typer.Option(help="Why the gate is overridden (recorded).")
    ] = None,
    actor: ActorOption = None,
    policy_asts: AstOption = POLICY_ASTS,
) -> None:
    """Promote a registered version to canary or production, and bundle it.

    Refused unless its gate passed, or --force with a --reason (on the record)."""
    from modelyard.registry.promote import Release, parse_targeting
    from modelyard.registry.promote import promote as run_promote

    if force and not (reason and reason.strip()):
        raise ConfigError(
            "--force needs --reason '...': the audit log records why the gate was overridden"
        )
    if reason and not force:
        raise ConfigError("--reason goes with --force; a passed version needs neither")
    release = Release(
        tier=to,
        weight=weight,
        targeting=parse_targeting(targeting),
        force_reason=reason if force else None,
    )
    with _bridge(actor, "promote", policy_asts) as bridge:
        report = run_promote(bridge, model, version, release)
        _console().print(f"promoted {model} {version} to {to}")
        _report(report)
        _print_active(bridge.conn, model_name=model)


@bridge_app.command("sync")
def bridge_sync(
    model: Annotated[str | None, typer.Option(help="Only this registered model.")] = None,
    actor: ActorOption = None,
    policy_asts: AstOption = POLICY_ASTS,
) -> None:
    """Bundle every promoted version and activate the tiers' holders.

    Promoted: alias canary/production, or stage Staging/Production. Safe to run again, and
    concurrently."""
    from modelyard.registry.bridge import sync

    with _bridge(actor, "sync", policy_asts) as bridge:
        _report(sync(bridge, model))


@bridge_app.command("serve")
def bridge_serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one, printed).")] = 8787,
    interval: Annotated[
        float,
        typer.Option(help="Seconds between full syncs (stage changes send no webhook); 0: never."),
    ] = 60.0,
    model: Annotated[
        str | None, typer.Option(help="Only this registered model (others' webhooks ignored).")
    ] = None,
    policy_asts: AstOption = POLICY_ASTS,
) -> None:
    """Receive MLflow registry webhooks and sync the model at once.

    Deliveries are HMAC-verified with MODELYARD_WEBHOOK_SECRET; POST /webhook, GET /healthz."""
    from modelyard.registry.bridge import sync
    from modelyard.registry.webhook import Receiver

    secret = os.environ.get("MODELYARD_WEBHOOK_SECRET", "")
    if not secret:
        raise ConfigError(
            "MODELYARD_WEBHOOK_SECRET is not set: it must be the secret the MLflow webhook "
            "was created with (create_webhook(..., secret=...))"
        )

    def run(name: str | None) -> object:
        if model and name not in (None, model):
            return None
        with _bridge("bridge-serve", "webhook" if name else "sync", policy_asts) as bridge:
            report = sync(bridge, name or model)
        log.warning("bridge sync of %s: %s", name or model or "every model", report.as_dict())
        return report

    receiver = Receiver(secret, run, host=host, port=port, interval=interval)
    print(f"bridge listening on http://{host}:{receiver.port}/webhook", flush=True)  # noqa: T201 - the CLI's own output
    receiver.serve_forever()


def rollout(
    policy: Annotated[str, typer.Argument(help="Policy id.")],
    tier: Annotated[str, typer.Option(help="canary | production")] = "production",
    weight: Annotated[int | None, typer.Option(help="Share of devices, 0-100.")] = None,
    targeting: Annotated[str | None, typer.Option(help="JSON object of device attributes.")] = None,
    bundle: Annotated[
        str | None, typer.Option(help="Bundle to roll out (default: the active canary).")
    ] = None,
    actor: ActorOption = None,
    policy_asts: AstOption = POLICY_ASTS,
) -> None:
    """Roll a policy's bundle (its active canary, by default) out to a tier and weight."""
    from modelyard.registry.promote import Release, parse_targeting
    from modelyard.registry.promote import rollout as run_rollout

    release = Release(tier=tier, weight=weight, targeting=parse_targeting(targeting))
    with _bridge(actor, "rollout", policy_asts) as bridge:
        report = run_rollout(bridge, policy, release, bundle)
        _report(report)
        _print_active(bridge.conn, policy_id=policy)


def rollback(
    policy: Annotated[str, typer.Argument(help="Policy id.")],
    tier: Annotated[str, typer.Option(help="canary | production")] = "production",
    reason: Annotated[str | None, typer.Option(help="Why (recorded).")] = None,
    actor: ActorOption = None,
    policy_asts: AstOption = POLICY_ASTS,
) -> None:
    """Withdraw a tier's active bundle (production goes back to the one before it).

    A canary is simply withdrawn. Both are written to the audit log."""
    from modelyard.registry.promote import rollback as run_rollback

    with _bridge(actor, "rollback", policy_asts) as bridge:
        report = run_rollback(bridge, policy, tier, reason)
        _report(report)
        _print_active(bridge.conn, policy_id=policy)


@bundles_app.command("list")
def bundles_list(
    policy: Annotated[str | None, typer.Option(help="Only this policy.")] = None,
) -> None:
    """Every bundle: version, tier, weight, whether active, its model version and gate."""
    with _database() as conn:
        rows = bundles.list_all(conn, policy)
    table = Table(title=f"{len(rows)} bundles")
    for column in (
        "bundle",
        "active",
        "tier",
        "weight",
        "model version",
        "gate",
        "reference",
        "created",
    ):
        table.add_column(column)
    for r in rows:
        gate = r["gate_status"] + (" (forced)" if r["force_reason"] else "")
        table.add_row(
            f"{r['policy_id']}/v{r['bundle_version']}", "[green]yes[/]" if r["is_active"] else "no",
            r["bundle_tier"] or "", "" if r["weight"] is None else str(r["weight"]),
            f"{r['mlflow_model_name']} v{r['mlflow_model_version']}", gate,
            "yes" if r["has_reference"] else "[yellow]pending[/]",
            f"{r['created_at']:%Y-%m-%d %H:%M}",
        )  # fmt: skip
    _console().print(table)


@bundles_app.command("show")
def bundles_show(
    bundle: Annotated[str, typer.Argument(help="<policy>/v<N> or the bundle id.")],
    as_json: Annotated[bool, typer.Option("--json", help="The row as JSON.")] = False,
) -> None:
    """One bundle: its row, artifacts and reference statistics."""
    with _database() as conn:
        row = bundles.get(conn, bundle)
        stats = bundles.reference_stats(conn, row["id"])
    if as_json:
        print(json.dumps({"bundle": row, "reference_stats": stats}, indent=2, default=str))  # noqa: T201
        return
    console = _console()
    state = (
        f"active {row['bundle_tier']} weight {row['weight']}" if row["is_active"] else "inactive"
    )
    console.print(
        f"[bold]{row['policy_id']}/v{row['bundle_version']}[/] ({row['id']}): {state}\n"
        f"  model: {row['mlflow_model_name']} v{row['mlflow_model_version']}, "
        f"gate {row['gate_status']}"
        + (
            f", forced by {row['promoted_by']}: {row['force_reason']}"
            if row["force_reason"]
            else ""
        )
        + f"\n  targeting: {json.dumps(row['targeting'])}\n  git sha: {row['git_sha']}"
        + (
            f"\n  manifest: signed by key {row['signing_key_id']}, expires "
            f"{row['manifest_expires_at']:%Y-%m-%d %H:%M}"
            if row["manifest"]
            else "\n  manifest: not signed (devices are not served it)"
        )
    )
    table = Table(title="artifacts")
    for column in ("path", "role", "format", "precision", "bytes", "sha256", "storage path"):
        table.add_column(column)
    for a in row["artifacts"]:
        table.add_row(
            a["path"], a["role"], a.get("format") or "", a.get("precision") or "",
            str(a.get("size_bytes", "")), a["sha256"][:16], a["storage_path"],
        )  # fmt: skip
    console.print(table)
    for s in stats:
        hist = s["stats"].get("histograms", {})
        means = ", ".join(
            f"{k} {v['mean']:.3g}" for k, v in hist.items() if v.get("mean") is not None
        )
        console.print(f"  reference ({s['snapshot_type']}, {s['sample_count']} images): {means}")


@bundles_app.command("history")
def bundles_history(
    policy: Annotated[str | None, typer.Option(help="Only this policy.")] = None,
    bundle: Annotated[
        str | None, typer.Option(help="Only this bundle (<policy>/v<N> or id).")
    ] = None,
) -> None:
    """The audit log: every creation, activation, supersession, rollback and refusal."""
    with _database() as conn:
        bundle_id = bundles.get(conn, bundle)["id"] if bundle else None
        rows = bundles.events(conn, bundle_id=bundle_id, policy_id=policy)
    table = Table(title=f"{len(rows)} events")
    for column in ("at", "bundle", "event", "actor", "details"):
        table.add_column(column)
    for e in rows:
        label = f"{e['policy_id']}/v{e['bundle_version']}" if e["bundle_id"] else "-"
        details = {k: v for k, v in e["details"].items() if v is not None}
        table.add_row(
            f"{e['at']:%Y-%m-%d %H:%M:%S}", label, e["event"], e["actor"], json.dumps(details)
        )
    _console().print(table)


def lineage(
    bundle: Annotated[str, typer.Argument(help="<policy>/v<N> or the bundle id.")],
    rows: Annotated[int, typer.Option(help="Sample rows to print (all are in --json).")] = 5,
    files: Annotated[
        bool, typer.Option(help="List every artifact checked (default: those that failed).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The whole chain as JSON.")] = False,
) -> None:
    """The chain from a bundle to the sample rows that trained it, each link a query."""
    from modelyard.registry.lineage import chain

    settings = Settings.from_env()
    tracker = Tracker(stores.mlflow_tracking_uri(settings), ARTIFACT_ROOT).ready()
    with _database() as conn:
        links = chain(conn, tracker.client, ObjectStore(settings.storage_url), bundle)
    if as_json:
        print(json.dumps([link.__dict__ for link in links], indent=2, default=str))  # noqa: T201
        return
    console = _console()
    for i, link in enumerate(links, 1):
        console.print(f"[bold]{i}. {link.name}[/]  [dim]({link.query})[/]")
        for key, value in link.facts.items():
            if key == "rows":
                for r in value[:rows]:
                    console.print(f"     {json.dumps(r)}")
                if len(value) > rows:
                    console.print(f"     ... {len(value) - rows} more (--rows N, or --json)")
            elif key == "files":
                _print_files(value, every=files)
            else:
                console.print(f"   {key}: {value}")


def _print_files(checked: list[dict[str, Any]], every: bool) -> None:
    """The artifacts checked in the bucket: a count when all match, and each that did not
    (every one with ``every``)."""
    from modelyard.registry.lineage import MATCHES

    console = _console()
    matched = sum(f["verified"] == MATCHES for f in checked)
    console.print(f"   {matched} of {len(checked)} files in the bucket match their sha256"
                  + ("" if every else " (--files lists them)"))  # fmt: skip
    for f in checked:
        if every or f["verified"] != MATCHES:
            console.print(f"     {f['path']}  {f['sha256'][:16]}  {f['verified']}")


def _print_active(
    conn: Connection, *, model_name: str | None = None, policy_id: str | None = None
) -> None:
    rows = [
        r for r in bundles.list_all(conn, policy_id)
        if r["is_active"] and (model_name is None or r["mlflow_model_name"] == model_name)
    ]  # fmt: skip
    for r in rows:
        _console().print(
            f"active: {r['policy_id']}/v{r['bundle_version']} {r['bundle_tier']} "
            f"weight {r['weight']} "
            f"({r['mlflow_model_name']} v{r['mlflow_model_version']})"
        )
