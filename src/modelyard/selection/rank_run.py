"""``modelyard ranker train``: the group ranker from a decisions dataset's cached embeddings
to a gated ONNX and its metadata.

Steps: the dataset's decisions through the integrity gate (fail closed) and its
group-disjoint splits -> the cached embeddings of every photo -> train on the train split ->
selection accuracy and NDCG@3 on validation and test beside the random and "always the
highest stage" baselines -> the ``rank`` gate on the test split -> ONNX (the project's
exporter), run by onnxruntime on every test burst against PyTorch -> ``ranker.onnx``,
``ranker.pt`` and ``ranker_metadata.json`` (sizes by split, metrics, baselines, data hash,
gate, MLflow run). A failing gate is reported, loudly, and the exit status says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.errors import GateError
from modelyard.export.manifest import sha256_path
from modelyard.selection import data, features, outputs, ranker
from modelyard.selection.data import Decisions, Shot
from modelyard.selection.embeddings import Cache
from modelyard.selection.ranker import RankerParams
from modelyard.tracking import Tracker

log = logging.getLogger(__name__)

EXPERIMENT = outputs.EXPERIMENT
NAME = "ranker"


def run(
    decisions: Decisions,
    cache: Cache,
    params: RankerParams,
    gate: dict[str, float],
    out: Path,
    tracker: Tracker | None,
) -> outputs.Outcome:
    splits = {name: data.groups(decisions.split(name)) for name in ("train", "validation", "test")}
    if not splits["train"]:
        raise GateError(f"dataset {decisions.dataset}: no training bursts; split the dataset")
    packed = {name: _pack(groups, cache, params) for name, groups in splits.items()}
    x, idx, kept = packed["train"]
    network = ranker.train(x, idx, kept, params)
    results = {
        name: _evaluate(network, packed[name], splits[name]) for name in ("validation", "test")
    }
    verdict, reasons = _judge(results["test"], len(splits["test"]), gate)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path, parity = _export(network, packed["test"], out, gate, x.shape[1])
    if parity["max_abs_diff"] > gate["parity_output"]:
        verdict = "FAIL"
        reasons.append(
            f"ONNX parity: score off by {parity['max_abs_diff']:.2e} > {gate['parity_output']}"
        )
    torch.save(network.state_dict(), out / f"{NAME}.pt")
    run_id = outputs.track(
        tracker,
        NAME,
        params,
        results,
        (verdict, reasons),
        decisions,
        [onnx_path, out / f"{NAME}.pt"],
    )
    metadata = {
        "model": NAME,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": decisions.dataset,
        "dataset_id": decisions.dataset_id,
        "data_hash": decisions.data_hash,
        "sizes": decisions.sizes(),
        "unrankable_groups": data.unrankable(decisions.shots),
        "inputs": {
            "kind": params.inputs,
            "features": x.shape[1],
            "embeddings": str(cache.folder),
            "crafted": list(features.NAMES),
        },
        "params": asdict(params),
        "metrics": {k: v["ranker"] for k, v in results.items()},
        "baselines": {
            k: {"random": v["random"], "highest_stage": v["highest_stage"]}
            for k, v in results.items()
        },
        "gate": {"status": verdict, "reasons": reasons, "thresholds": gate},
        "onnx": {
            "file": onnx_path.name,
            "sha256": sha256_path(onnx_path),
            "input": ranker.INPUT,
            "output": ranker.OUTPUT,
            "call": "one burst per call (N photos x F)",
            "parity": parity,
        },
        "mlflow_run_id": run_id,
    }
    return outputs.finish(out, NAME, metadata)


def _pack(
    groups: list[list[Shot]], cache: Cache, params: RankerParams
) -> tuple[np.ndarray, list[list[int]], list[int]]:
    shots = [s for g in groups for s in g]
    if not shots:
        return np.zeros((0, 0), np.float32), [], []
    x = cache.vectors([s.sha256 for s in shots])
    if params.inputs == "crafted":
        x = x[:, -features.SIZE :]
    if params.use_stage:
        x = np.concatenate([x, np.asarray([[s.stage or 0] for s in shots], np.float32)], axis=1)
    idx, kept, start = [], [], 0
    for g in groups:
        idx.append(list(range(start, start + len(g))))
        kept.append(start + next(i for i, s in enumerate(g) if s.kept))
        start += len(g)
    return x.astype(np.float32), idx, kept


def _evaluate(
    network: ranker.ScoreNetwork,
    packed: tuple[np.ndarray, list[list[int]], list[int]],
    groups: list[list[Shot]],
) -> dict[str, dict[str, float]]:
    x, idx, kept = packed
    if not idx:
        empty = {"selection_accuracy": float("nan"), "ndcg3": float("nan")}
        return {"ranker": empty, "random": empty, "highest_stage": empty}
    group_scores = ranker.score_groups(network, x, idx)
    positions = [k - g[0] for k, g in zip(kept, idx, strict=True)]
    return {
        "ranker": _rounded(ranker.ranking_metrics(group_scores, positions)),
        "random": _rounded(ranker.random_baseline([len(g) for g in idx])),
        "highest_stage": _rounded(ranker.stage_baseline(groups)),
    }


def _judge(
    test: dict[str, dict[str, float]], n_groups: int, gate: dict[str, float]
) -> tuple[str, list[str]]:
    acc = test["ranker"]["selection_accuracy"]
    stage = test["highest_stage"]["selection_accuracy"]
    chance = test["random"]["selection_accuracy"]
    reasons = []
    if n_groups < gate["min_test_groups"]:
        reasons.append(
            f"{n_groups} test bursts < {gate['min_test_groups']:.0f}: no evidence either way"
        )
    if not acc >= gate["min_selection_accuracy"]:
        reasons.append(f"selection accuracy {acc:.3f} < {gate['min_selection_accuracy']}")
    if not acc - stage >= gate["min_margin_over_highest_stage"]:
        reasons.append(
            f"selection accuracy {acc:.3f} does not beat 'always the highest stage' "
            f"({stage:.3f}) by {gate['min_margin_over_highest_stage']}"
        )
    if not acc - chance >= gate["min_margin_over_random"]:
        reasons.append(
            f"selection accuracy {acc:.3f} does not beat random ({chance:.3f}) by "
            f"{gate['min_margin_over_random']}"
        )
    return ("FAIL" if reasons else "PASS"), reasons


def _export(
    network: ranker.ScoreNetwork,
    packed: tuple[np.ndarray, list[list[int]], list[int]],
    out: Path,
    gate: dict[str, float],
    n_features: int,
) -> tuple[Path, dict[str, Any]]:
    target = out / f"{NAME}.onnx"
    x, idx, _ = packed

    def check(onnx: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
        worst, same_top = 0.0, 0
        for g in idx:
            ours, theirs = ranker.scores(network, x[g]), onnx(x[g])
            worst = max(worst, float(np.max(np.abs(ours - theirs))))
            same_top += int(np.argmax(ours) == np.argmax(theirs))
        return {
            "bursts": len(idx),
            "max_abs_diff": worst,
            "same_top_pick": same_top,
            "tolerance": gate["parity_output"],
        }

    example = torch.zeros(4, n_features)
    parity = outputs.export_checked(network, example, target, (ranker.INPUT, ranker.OUTPUT), check)
    return target, parity


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in values.items()}
