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
    ├── IngestError                 a source file as a whole cannot be read (bad records are
    │                               reported, not raised)
    ├── TrackingError               the MLflow tracking store refused or lacks a run
    └── TrainingError               a training could not start or did not finish
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


class TrackingError(ModelyardError):
    """The MLflow tracking store refused a call or lacks the named run."""


class TrainingError(ModelyardError):
    """A training could not start (bad inputs) or did not finish."""
