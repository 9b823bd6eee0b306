"""MLflow tracking: the one module outside ``registry/`` that imports mlflow.

A ``Tracker`` points at a tracking store (by default the ``mlflow`` database on the project's
PostgreSQL, see ``modelyard.db.stores``) and an artifact root (``mlruns/``); a ``TrackedRun``
logs params, metrics, tags and artifacts to one run. Everything goes through ``MlflowClient``
with explicit run ids — no global active run — so nested runs (tuning trials) and resumed
runs need no special handling.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.errors import TrackingError

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
ARTIFACT_ROOT = Path("mlruns")  # where new experiments keep their artifacts, by default
MAX_PARAM_CHARS = 6000

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as dotted keys with string values (MLflow params are flat text)."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            text = "" if value is None else str(value)
            flat[name] = (
                text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."
            )
    return flat


@dataclass(frozen=True)
class Tracker:
    """A tracking store and the folder under which new experiments keep their artifacts."""

    uri: str
    artifact_root: Path
    client: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "client", _client(self.uri))

    def ready(self, attempts: int = 5) -> Tracker:
        """Touch the store so that MLflow creates its tables now; processes started together
        on a new database race to do it, and the loser retries once the winner is done."""
        for attempt in range(1, attempts + 1):
            try:
                self.client.search_experiments(max_results=1)
                return self
            except Exception:  # SQLAlchemy's or MLflow's error, depending on the step
                if attempt == attempts:
                    raise
                log.info("the tracking tables are being created elsewhere; retrying")
                time.sleep(0.5 * attempt)
        return self

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created (artifacts under the root) if missing."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        location = (self.artifact_root.absolute() / name).as_uri()
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except MlflowException:
            again = self.client.get_experiment_by_name(name)  # created by a concurrent worker
            if again is None:
                raise
            return str(again.experiment_id)

    def start_run(
        self,
        experiment: str,
        *,
        run_name: str,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
    ) -> TrackedRun:
        all_tags = dict(tags)
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        run = self.client.create_run(
            self.experiment_id(experiment), tags=all_tags, run_name=run_name
        )
        log.info("MLflow run %s (%s) in experiment '%s'", run.info.run_id, run_name, experiment)
        return TrackedRun(self, run.info.run_id)

    def reopen(self, run_id: str) -> TrackedRun:
        """An existing run, to go on logging into it (a resumed training)."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException as exc:
            raise TrackingError(f"MLflow run {run_id}: not found in {self.uri}") from exc
        self.client.update_run(run_id, status="RUNNING")
        return TrackedRun(self, run_id)


@dataclass(frozen=True)
class TrackedRun:
    tracker: Tracker
    run_id: str

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self.tracker.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        if items:
            self.tracker.client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        if items:
            self.tracker.client.log_batch(self.run_id, tags=items)

    def log_artifacts(self, paths: Iterable[Path], artifact_path: str | None = None) -> None:
        for path in paths:
            if path.is_dir():
                self.tracker.client.log_artifacts(self.run_id, str(path), artifact_path)
            else:
                self.tracker.client.log_artifact(self.run_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        """End the run: FINISHED, FAILED or KILLED."""
        self.tracker.client.set_terminated(self.run_id, status)

    def data(self) -> dict[str, dict[str, Any]]:
        """The run's params, last metrics and tags as plain dicts (for reports and tests)."""
        run = self.tracker.client.get_run(self.run_id)
        return {"params": run.data.params, "metrics": run.data.metrics, "tags": run.data.tags}

    def metric_history(self, key: str) -> list[float]:
        return [m.value for m in self.tracker.client.get_metric_history(self.run_id, key)]


def ui_command(uri: str, artifact_root: Path, *, host: str, port: int) -> list[str]:
    """The MLflow UI server over ``uri``: one worker (enough, and kind to 2 cores)."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        artifact_root.absolute().as_uri(),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


# The server would also start a job runner and its worker processes; the UI needs neither.
UI_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
