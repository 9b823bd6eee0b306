"""``modelyard selection``: photo selection from a decisions database — the integrity gate
and inspection report that come before any training, and the demo's generated databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.quality import EXIT_GATE_FAILED

if TYPE_CHECKING:
    from modelyard.selection.outputs import Outcome
    from modelyard.tracking import Tracker

selection_app = typer.Typer(
    help="Photo selection from human decisions: integrity gate, inspection, demo data.",
    no_args_is_help=True,
)


@selection_app.command("inspect")
def inspect(
    database: Annotated[Path, typer.Argument(help="The decisions SQLite database.")],
    reports: Annotated[Path, typer.Option(help="Folder for the inspection report.")] = Path(
        "reports/daily_summaries"
    ),
) -> None:
    """Run the integrity gate and write the inspection report (the first 50 rows as
    stored, counts by project and action, every invalid row). Exit 2 when a rule breaks:
    no training may start on this database until it passes."""
    from modelyard.selection import decisions, integrity

    rows = decisions.read_rows(database)
    result = integrity.check(rows)
    path = integrity.write_inspection(integrity.inspection(rows, result, str(database)), reports)
    typer.echo(f"integrity gate: {result.summary()}")
    typer.echo("by project: " + ", ".join(f"{k} {v}" for k, v in result.by_project.items()))
    typer.echo("by action: " + ", ".join(f"{k} {v}" for k, v in result.by_action.items()))
    for rule, count in result.by_rule().items():
        typer.echo(f"  {count} x {rule}")
    for v in result.violations[:10]:
        typer.echo(f"  row {v.row_id}: {v.field} = {v.value}: {v.reason} (fix: {v.fix})")
    if len(result.violations) > 10:
        typer.echo(f"  ... {len(result.violations) - 10} more in the report")
    typer.echo(f"inspection report: {path}")
    if not result.passed:
        raise typer.Exit(EXIT_GATE_FAILED)


@selection_app.command("summary")
def summary(
    reports: Annotated[Path, typer.Option(help="The daily summaries folder.")] = Path(
        "reports/daily_summaries"
    ),
    models: Annotated[Path, typer.Option(help="Folder of the selection models.")] = Path(
        "models/selection"
    ),
) -> None:
    """Write today's summary, reports/daily_summaries/<UTC date>.md: the latest integrity
    inspection and each selection model's figures beside its baselines, with its gate."""
    from modelyard.selection import summary as daily

    typer.echo(f"daily summary: {daily.write(reports, models)}")


@selection_app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Option(help="Folder for decisions.db and images/.")] = Path(
        "data/selection"
    ),
    groups: Annotated[int, typer.Option(min=1, help="Bursts of similar photos.")] = 200,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    stage_decisive: Annotated[
        bool, typer.Option(help="Make the highest stage always the kept photo.")
    ] = False,
) -> None:
    """Generate a decisions database (version 3) whose photos carry a learnable signal:
    the sharpest, best-exposed shot of a burst is kept, crops frame a salient object."""
    from modelyard.selection import synthetic

    cfg = synthetic.SelectionConfig(groups=groups, seed=seed, stage_decisive=stage_decisive)
    summary = synthetic.generate(out, cfg)
    typer.echo(
        f"wrote {summary['decisions']}: {summary['rows']} photos in {summary['groups']} groups "
        f"({', '.join(f'{k} {v}' for k, v in summary['by_action'].items())}); always "
        f"keeping the highest stage would be right {summary['highest_stage_baseline']:.0%} "
        "of the time"
    )


def embed(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Name, policy/name or id.")],
    cache: Annotated[Path, typer.Option(help="Embeddings cache root.")] = Path("data/embeddings"),
    params: Annotated[Path, typer.Option(help="Params file (section embed).")] = Path(
        "params.yaml"
    ),
    verify: Annotated[bool, typer.Option(help="Re-compute a sample of cached rows.")] = True,
) -> None:
    """Embed a dataset's photos (a torchvision backbone plus hand-crafted features), cached
    by image sha256: only images not in the cache are embedded."""
    from modelyard.cli_common import database
    from modelyard.config import Settings, from_mapping, load_params
    from modelyard.db import datasets as datasets_db
    from modelyard.db import samples as samples_db
    from modelyard.selection.embeddings import Cache, Embedder, EmbedParams, Photo
    from modelyard.storage import ObjectStore

    raw = load_params(params).get("embed") if params.is_file() else None
    embed_params = from_mapping(EmbedParams, raw or {}, "embed")
    store = ObjectStore(Settings.from_env().storage_url)
    with database() as conn:
        ds = datasets_db.find(conn, dataset)
        rows = samples_db.all_rows(conn, ds.id)

    def reader(sha: str) -> Callable[[], bytes]:
        return lambda: store.get_blob(sha)

    photos = [
        Photo(
            sha256=str(r["image_sha256"]),
            file=str(r["image_path"]),
            read=reader(str(r["image_sha256"])),
        )
        for r in rows
    ]
    embedder = Embedder(embed_params)
    target = Cache(cache, embed_params)
    outcome = target.update(photos, embedder)
    typer.echo(
        f"{ds.name}: {outcome.embedded} embedded, {outcome.cached} already cached, "
        f"{len(outcome.failed)} unreadable; {outcome.dims} values per image "
        f"({embedder.backbone_dims} {embed_params.backbone} + hand-crafted) in {outcome.folder}"
    )
    for failure in outcome.failed[:10]:
        typer.echo(f"  unreadable {failure['file']}: {failure['reason']}")
    if verify:
        check = target.verify(photos, embedder)
        typer.echo(
            f"verify: {check['checked']} cached rows re-computed, largest difference "
            f"{check['max_abs_diff']:.2e}: {'ok' if check['passed'] else 'MISMATCH'}"
        )
        if not check["passed"]:
            raise typer.Exit(1)


ranker_app = typer.Typer(help="The group ranker: which photo of a burst a person keeps.")


@ranker_app.command("train")
def ranker_train(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Name, policy/name or id.")],
    cache: Annotated[Path, typer.Option(help="Embeddings cache root.")] = Path("data/embeddings"),
    out: Annotated[Path, typer.Option(help="Folder for the model files.")] = Path(
        "models/selection"
    ),
    params: Annotated[Path, typer.Option(help="Params file (embed, ranker).")] = Path(
        "params.yaml"
    ),
    gates: Annotated[Path, typer.Option(help="Acceptance gates (rank).")] = Path(
        "acceptance_gates.yaml"
    ),
) -> None:
    """Train the ranker on a split decisions dataset's cached embeddings (`modelyard embed`
    first); figures beside the random and highest-stage baselines; exit 2 when the `rank`
    gate fails."""
    from modelyard import stages
    from modelyard.cli_common import database
    from modelyard.config import from_mapping, load_params
    from modelyard.db import datasets as datasets_db
    from modelyard.selection import data, rank_run
    from modelyard.selection import gates as selection_gates
    from modelyard.selection.embeddings import Cache, EmbedParams
    from modelyard.selection.ranker import RankerParams

    loaded = load_params(params) if params.is_file() else {}
    embed_params = from_mapping(EmbedParams, loaded.get("embed") or {}, "embed")
    rank_params = from_mapping(RankerParams, loaded.get("ranker") or {}, "ranker")
    gate = selection_gates.load(gates, "rank", selection_gates.RANK_KEYS)
    with database() as conn:
        decisions = data.load(conn, datasets_db.find(conn, dataset))
    tracker = stages.tracker()
    outcome = rank_run.run(decisions, Cache(cache, embed_params), rank_params, gate, out, tracker)
    m = outcome.metadata
    sizes = m["sizes"]
    typer.echo(
        "bursts by split: "
        + ", ".join(f"{k} {v['groups']} ({v['photos']} photos)" for k, v in sizes.items())
    )
    typer.echo(f"{'split':<11} {'model':<14} {'selection acc':>13} {'NDCG@3':>7}")
    for split in ("validation", "test"):
        rows = [("ranker", m["metrics"][split]), *m["baselines"][split].items()]
        for who, values in rows:
            acc, ndcg = values["selection_accuracy"], values["ndcg3"]
            typer.echo(f"{split:<11} {who:<14} {acc:>13.3f} {ndcg:>7.3f}")
    parity = m["onnx"]["parity"]
    typer.echo(
        f"ONNX: {out / m['onnx']['file']} (score off by at most {parity['max_abs_diff']:.1e} "
        f"over {parity['bursts']} test bursts)"
    )
    _conclude("rank", outcome, tracker, out)


crop_app = typer.Typer(help="The crop proposer: the box a person crops a photo to.")


@crop_app.command("train")
def crop_train(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Name, policy/name or id.")],
    out: Annotated[Path, typer.Option(help="Folder for the model files.")] = Path(
        "models/selection"
    ),
    params: Annotated[Path, typer.Option(help="Params file (crop).")] = Path("params.yaml"),
    gates: Annotated[Path, typer.Option(help="Acceptance gates (crop).")] = Path(
        "acceptance_gates.yaml"
    ),
) -> None:
    """Train the crop proposer on a split decisions dataset's cropped photos; mean IoU, BDE
    and centre distance, overall and by stage, beside the whole-image and centre-crop
    baselines; exit 2 when the `crop` gate fails."""
    from modelyard import stages
    from modelyard.cli_common import database
    from modelyard.config import Settings, from_mapping, load_params
    from modelyard.db import datasets as datasets_db
    from modelyard.selection import crop_run, data
    from modelyard.selection import gates as selection_gates
    from modelyard.selection.crop import CropParams
    from modelyard.storage import ObjectStore

    loaded = load_params(params) if params.is_file() else {}
    crop_params = from_mapping(CropParams, loaded.get("crop") or {}, "crop")
    gate = selection_gates.load(gates, "crop", selection_gates.CROP_KEYS)
    store = ObjectStore(Settings.from_env().storage_url)
    with database() as conn:
        decisions = data.load(conn, datasets_db.find(conn, dataset))
    tracker = stages.tracker()
    outcome = crop_run.run(decisions, store.get_blob, crop_params, gate, out, tracker)
    m = outcome.metadata
    typer.echo("cropped photos by split: " + ", ".join(f"{k} {v}" for k, v in m["crops"].items()))
    typer.echo(f"{'split':<11} {'model':<12} {'mean IoU':>8} {'BDE':>6} {'centre':>6}")
    for split in ("validation", "test"):
        rows = [("proposer", m["metrics"][split]), *m["baselines"][split].items()]
        for who, v in rows:
            typer.echo(
                f"{split:<11} {who:<12} {v['mean_iou']:>8.3f} {v['bde']:>6.3f} "
                f"{v['centre_distance']:>6.3f}"
            )
    stage_line = ", ".join(
        f"{stage} {v['mean_iou']:.3f} (n={v['n']})"
        for stage, v in m["by_stage"]["test"]["proposer"].items()
    )
    typer.echo(f"test mean IoU by stage: {stage_line}")
    parity = m["onnx"]["parity"]
    typer.echo(
        f"ONNX: {out / m['onnx']['file']} (box off by at most {parity['max_abs_diff']:.1e} "
        f"over {parity['photos']} test photos)"
    )
    _conclude("crop", outcome, tracker, out)


def _conclude(gate: str, outcome: Outcome, tracker: Tracker, folder: Path) -> None:
    """The gate's verdict and reasons, the metadata file, the registered version (a passing
    model only); exit 2 when the gate failed."""
    from modelyard.registry import selection as selection_registry

    m = outcome.metadata
    typer.echo(f"gate {gate}: {m['gate']['status']}")
    for reason in m["gate"]["reasons"]:
        typer.echo(f"  {reason}")
    typer.echo(f"metadata: {outcome.path}")
    done = selection_registry.register(tracker.client, m, folder)
    if done is not None:
        state = "registered" if done["created"] == "true" else "already registered as"
        typer.echo(f"{state} {done['name']} version {done['version']} (candidate)")
    if not outcome.passed:
        raise typer.Exit(EXIT_GATE_FAILED)
