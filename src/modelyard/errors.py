"""The one exception tree of modelyard.

Every error the project raises on purpose is a ``ModelyardError``; the CLI and the
pipeline scripts catch that base once, print its message and exit non-zero.
Messages name the thing that is wrong, the value, and what to do about it.

    ModelyardError
    ├── ConfigError                 a setting or params.yaml key is missing, unknown or mistyped
    ├── DatabaseError               the database cannot be reached or refused a statement
    │   └── MigrationError          a migration failed, or the applied history does not match
    │       └── MigrationChecksumError   an applied migration file was edited afterwards
    ├── NotFoundError               a named dataset, policy or object does not exist
    │   └── AmbiguousNameError      a name matches several records; use the id
    ├── StateError                  an operation is not allowed in the current state
    │   └── TransitionError         an illegal dataset status transition
    ├── StorageError                the object store cannot read or write
    │   └── IntegrityError          stored bytes do not match their sha256
    │       └── SignatureError      a bundle manifest's signature does not verify, it has
    │                               expired, or it would roll a device back unannounced
    ├── IngestError                 a source file as a whole cannot be read (bad records are
    │                               reported, not raised)
    ├── TrackingError               the MLflow tracking store refused or lacks a run
    ├── TrainingError               a training could not start or did not finish
    ├── ExportError                 an export could not be written or checked
    │   ├── RuntimeUnavailable      this machine cannot run the artifact (CoreML off macOS):
    │   │                           its numeric parity is reported as skipped, never passed
    │   └── ParityError             an artifact does not behave like its PyTorch model
    ├── EvaluationError             a model cannot be evaluated (inputs missing or changed)
    ├── RegistryError               a model version cannot be registered or promoted
    │   └── GateError               acceptance gates are missing, malformed, or not cleared
    ├── TelemetryError              a telemetry window does not fit its bundle's reference
    ├── BudgetError                 today's token budget for the labelling/audit hook is spent
    └── DeliveryError               the bundle API refused a device's request, or a download
                                    did not finish (the SDK's errors; ``status`` is the HTTP one)
"""

from __future__ import annotations


class ModelyardError(Exception):
    """Base of every error modelyard raises on purpose."""


class ConfigError(ModelyardError):
    """A setting or a params.yaml key is missing, unknown or has the wrong type."""


class DatabaseError(ModelyardError):
    """The database cannot be reached or refused a statement."""


class MigrationError(DatabaseError):
    """A migration failed or the applied history does not match the files."""


class MigrationChecksumError(MigrationError):
    """An already-applied migration file was edited."""


class NotFoundError(ModelyardError):
    """A named dataset, policy or stored object does not exist."""


class AmbiguousNameError(NotFoundError):
    """A name matches several records."""


class StateError(ModelyardError):
    """An operation is not allowed in the record's current state."""


class TransitionError(StateError):
    """An illegal dataset status transition."""


class StorageError(ModelyardError):
    """The object store cannot read or write."""


class IntegrityError(StorageError):
    """Stored bytes do not match their sha256."""


class IngestError(ModelyardError):
    """A source file as a whole cannot be read or understood."""


class SignatureError(IntegrityError):
    """A bundle manifest's signature does not verify, it expired, or it would roll back."""


class TrackingError(ModelyardError):
    """The MLflow tracking store refused a call or lacks the named run."""


class TrainingError(ModelyardError):
    """A training could not start (bad inputs) or did not finish."""


class ExportError(ModelyardError):
    """An export could not be written, loaded or checked."""


class RuntimeUnavailable(ExportError):
    """This machine cannot run the artifact (CoreML predicts on macOS only)."""


class ParityError(ExportError):
    """An exported artifact does not behave like the PyTorch model it came from."""


class EvaluationError(ModelyardError):
    """A model cannot be evaluated: its inputs are missing, or changed since they were made."""


class RegistryError(ModelyardError):
    """A model version cannot be registered or promoted."""


class GateError(RegistryError):
    """Acceptance gates are missing or malformed, or a version has not cleared them."""


class TelemetryError(ModelyardError):
    """A telemetry window does not fit the reference statistics of its bundle."""


class BudgetError(ModelyardError):
    """Today's token budget for the LLM/VLM labelling or audit hook is spent: calls pause
    until the next UTC day (or a larger budget)."""


class DeliveryError(ModelyardError):
    """The bundle API refused a request, or a download did not finish."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
