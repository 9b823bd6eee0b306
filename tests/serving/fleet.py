"""Published bundles without a training run: real bundle rows (activated through the
activation trigger), real objects in the store, real promotion statistics and real signed
manifests, with artifact files of random bytes. What the device API tests and the serve
benchmark run on; the bridge's own path from a trained model is tested in tests/registry."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvicorn

from modelyard.db import api_keys, bundles
from modelyard.db import datasets as datasets_db
from modelyard.db.bundles import NewBundle
from modelyard.db.connection import Connection
from modelyard.errors import NotFoundError
from modelyard.monitoring.reference import histogram
from modelyard.registry import manifest
from modelyard.serving import auth
from modelyard.signing import SigningKey
from modelyard.storage import ObjectStore, sha256_bytes

CLASSES = ["car", "person", "sign"]
FILES = {  # path -> (role, format, precision, primary, size)
    "onnx/model.onnx": ("model", "onnx", "fp32", True, 300_000),
    "onnx/model_dynamic_batch.onnx": ("model", "onnx", "fp32", False, 200_000),
    "onnx/manifest.json": ("manifest", None, None, False, 0),
    "tflite/model_fp16.tflite": ("model", "tflite", "fp16", True, 150_000),
    "tflite/model_int8.tflite": ("model", "tflite", "int8", False, 80_000),
    "tflite/manifest.json": ("manifest", None, None, False, 0),
    "coreml/model.mlpackage.zip": ("model", "coreml", "fp16", True, 160_000),
    "coreml/manifest.json": ("manifest", None, None, False, 0),
    "calibration.json": ("calibration", None, None, False, 0),
    "classes.json": ("classes", None, None, False, 0),
}

COREML_SKIPPED = "parity skipped: CoreML predicts on macOS only"
VERIFICATION = {  # as registration records it off macOS
    "onnx": {"verified": True, "verification": "onnx parity passed in its runtime"},
    "tflite": {"verified": True, "verification": "tflite parity passed in its runtime"},
    "coreml": {"verified": False, "verification": COREML_SKIPPED},
}


@dataclass
class Published:
    policy_id: str
    ids: dict[str, uuid.UUID] = field(default_factory=dict)  # tier -> bundle id
    files: dict[uuid.UUID, dict[str, bytes]] = field(default_factory=dict)


def reference_stats(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n = 200
    return {
        "schema_version": 1,
        "task": "detect",
        "histograms": {
            "score": histogram("score", rng.beta(5, 2, 600)),
            "confidence": histogram("confidence", rng.beta(6, 2, n)),
            "detections_per_image": histogram("detections_per_image", rng.poisson(3, n)),
            "brightness": histogram("brightness", rng.normal(120, 25, n)),
            "contrast": histogram("contrast", rng.normal(50, 10, n)),
            "blur": histogram("blur", rng.normal(2.5, 0.4, n)),
        },
        "class_mix": {
            "predicted": {"total": 0, "share": {}},
            "labelled": {"total": 0, "share": {}},
        },
    }


def _files(version: int) -> dict[str, bytes]:
    rng = np.random.default_rng(version)
    out = {}
    for path, (_, fmt, _, _, size) in FILES.items():
        if size:
            out[path] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        else:
            out[path] = json.dumps({"file": path, "version": version, "format": fmt}).encode()
    return out


def publish_bundle(
    conn: Connection, store: ObjectStore, key: SigningKey, *, policy_id: str, tier: str,
    weight: int, targeting: dict[str, Any] | None, version_seed: int,
) -> tuple[uuid.UUID, dict[str, bytes]]:  # fmt: skip
    try:
        dataset = datasets_db.find(conn, f"{policy_id}/fleet")
    except NotFoundError:
        dataset = datasets_db.create(conn, policy_id=policy_id, name="fleet", classes=CLASSES)
    files = _files(version_seed)
    artifacts = [
        {"path": path, "role": role, "format": fmt, "precision": precision, "primary": primary,
         "batch": 1, "size_bytes": len(files[path]), "sha256": sha256_bytes(files[path]),
         "architecture": "rt-detrv2-s", "version": str(version_seed),
         **(VERIFICATION[fmt] if role == "model" else {})}
        for path, (role, fmt, precision, primary, _) in FILES.items()
    ]  # fmt: skip
    new = NewBundle(
        policy_id=policy_id, mlflow_model_name=f"{policy_id}-detect",
        mlflow_model_version=str(version_seed), bundle_hash=f"hash{version_seed:012d}",
        gate_status="PASS", force_reason=None, promoted_by="tests", ontology_version="1",
        schema_version="1", policy_ast={"policy_id": policy_id, "root": {"op": "true"}},
        training_dataset_id=str(dataset.id), git_sha=None, gold_eval_results={},
    )  # fmt: skip
    row, _ = bundles.reserve(conn, new, artifacts, f"verify-ai-models/{policy_id}/v{{version}}")
    for artifact in row["artifacts"]:
        store.put_object(artifact["storage_path"], files[artifact["path"]])
    bundles.mark_verified(conn, row["id"])
    bundles.add_promotion_stats(conn, row["id"], reference_stats(version_seed), 200)
    activate(conn, key, row["id"], tier=tier, weight=weight, targeting=targeting)
    return row["id"], files


def activate(
    conn: Connection, key: SigningKey, bundle_id: uuid.UUID, *, tier: str, weight: int,
    targeting: dict[str, Any] | None, rollback: bool = False,
) -> None:  # fmt: skip
    row = bundles.get(conn, str(bundle_id))
    with conn.transaction():
        bundles.lock_policy(conn, row["policy_id"])
        current = bundles.active(conn, row["policy_id"], tier)
        if current is not None and current["id"] != bundle_id:
            bundles.set_inactive(conn, current["id"])
        bundles.set_active(conn, bundle_id, tier=tier, weight=weight, targeting=targeting)
        manifest.sign(conn, bundle_id, key, rollback=rollback)


def publish(
    conn: Connection, store: ObjectStore, key: SigningKey, *, policy_id: str = "fleet-policy",
    canary_weight: int = 10, canary_targeting: dict[str, Any] | None = None,
) -> Published:  # fmt: skip
    """Production v1 for every device, canary v2 at ``canary_weight`` for cus_acme's."""
    out = Published(policy_id=policy_id)
    targeting = canary_targeting if canary_targeting is not None else {"customer_ids": ["cus_acme"]}
    for tier, weight, target, seed in (
        ("production", 100, None, 1), ("canary", canary_weight, targeting, 2)
    ):  # fmt: skip
        bundle_id, files = publish_bundle(
            conn, store, key, policy_id=policy_id, tier=tier, weight=weight, targeting=target,
            version_seed=seed,
        )  # fmt: skip
        out.ids[tier] = bundle_id
        out.files[bundle_id] = files
    return out


def api_key(conn: Connection, customer: str, scopes: list[str]) -> tuple[str, uuid.UUID]:
    secret = auth.new_secret()
    row = api_keys.insert(
        conn, customer_id=customer, key_hash=auth.key_hash(secret),
        key_prefix=auth.shown_prefix(secret), scopes=scopes, name=None,
    )  # fmt: skip
    return secret, row["id"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a loopback port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def server_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
