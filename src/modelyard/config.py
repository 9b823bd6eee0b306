"""Settings from the environment, and params.yaml sections as frozen dataclasses.

Environment (nothing else is global):

- ``MODELYARD_HOME``: where embedded state lives (default ``./.modelyard``).
- ``DATABASE_URL``: a PostgreSQL URI; without it an embedded server runs in ``$MODELYARD_HOME/pg``.
- ``MODELYARD_STORAGE_URL``: the object store (default the folder ``$MODELYARD_HOME/storage``).
- ``MLFLOW_TRACKING_URI``: used from the tracking issue on.
- ``MODELYARD_SIGNING_KEY``: the bundle signing key's file (default
  ``$MODELYARD_HOME/keys/bundle_signing_ed25519.pem``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from modelyard.errors import ConfigError

T = TypeVar("T")
V = TypeVar("V")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Process-wide settings read from the environment once, at the edge."""

    home: Path
    database_url: str | None
    storage_url: str
    mlflow_tracking_uri: str | None
    signing_key: Path

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("MODELYARD_HOME") or ".modelyard").absolute()
        return cls(
            home=home,
            database_url=env.get("DATABASE_URL") or None,
            storage_url=env.get("MODELYARD_STORAGE_URL") or str(home / "storage"),
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or None,
            signing_key=Path(
                env.get("MODELYARD_SIGNING_KEY") or home / "keys" / "bundle_signing_ed25519.pem"
            ).absolute(),
        )


@dataclass(frozen=True, kw_only=True)
class BaseParams:
    """params.yaml ``base``: what every stage shares."""

    seed: int = 0
    policy_id: str
    dataset: str

    @property
    def dataset_ref(self) -> str:
        """The dataset as ``modelyard.db.datasets.find`` takes it: policy/name."""
        return f"{self.policy_id}/{self.dataset}"


def load_params(path: Path) -> dict[str, Any]:
    """Read params.yaml as a mapping of section name to section."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such params file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def section(params: Mapping[str, Any], name: str, cls: type[T]) -> T:
    """Build the dataclass ``cls`` from ``params[name]``; unknown or mistyped keys raise."""
    if name not in params:
        raise ConfigError(f"params: section '{name}' is missing")
    return from_mapping(cls, params[name], name)


def from_mapping(cls: type[T], raw: Any, path: str) -> T:
    """Build a (possibly nested) frozen dataclass from a mapping, naming any bad key by its path."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{path}.{unknown[0]}: unknown key; valid keys are {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(hints[key], value, f"{path}.{key}") for key, value in raw.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _coerce(hint: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, path)  # type: ignore[arg-type]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(inner[0], value, path) if len(inner) == 1 else value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1]
        return tuple(_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{path}: expected {hint.__name__}, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{path}: expected int, got {value!r}")
    return value


def pick(table: Mapping[str, V], name: str, what: str) -> V:
    """``table[name]``; an unknown name is an error naming ``what``, the closest valid name
    and all of them."""
    if name in table:
        return table[name]
    valid = sorted(table)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"{what}: '{name}' is not known{hint}; valid: {', '.join(valid)}")
