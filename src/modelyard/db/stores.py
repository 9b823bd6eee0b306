"""The other stores kept on the project's PostgreSQL server: MLflow's tracking and registry
database (``mlflow``) and Optuna's study database (``optuna``).

Both take SQLAlchemy URIs; this module hands them out with the database created if need be,
so the embedded default needs no set-up and a ``DATABASE_URL`` server gets its siblings.
"""

from __future__ import annotations

import psycopg

from modelyard.config import Settings
from modelyard.db import connection
from modelyard.errors import DatabaseError

MLFLOW_DATABASE = "mlflow"
OPTUNA_DATABASE = "optuna"


def sibling_url(settings: Settings, database: str) -> str:
    """The psycopg URI of ``database`` on the project's server, created if missing."""
    url = connection.database_url(settings)
    try:
        connection.ensure_database(url, database)
    except psycopg.Error as exc:
        raise DatabaseError(
            f"cannot create database '{database}' on the project's server: {exc}\n  fix: "
            f"create it once (CREATE DATABASE {database}) or point the tool at its own store"
        ) from exc
    return connection.with_database(url, database)


def sqlalchemy_url(url: str) -> str:
    """A ``postgresql://`` URI in the form SQLAlchemy needs for psycopg 3."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    raise DatabaseError(
        f"cannot turn '{url}' into a SQLAlchemy URI: expected postgresql://...\n"
        "  fix: write DATABASE_URL as a URI, not as key=value pairs"
    )


def mlflow_tracking_uri(settings: Settings) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the ``mlflow`` database beside the registry."""
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    return sqlalchemy_url(sibling_url(settings, MLFLOW_DATABASE))


def optuna_storage_url(settings: Settings) -> str:
    """The ``optuna`` database beside the registry (shared by every tuning worker)."""
    return sqlalchemy_url(sibling_url(settings, OPTUNA_DATABASE))
