from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelyard.config import Settings, from_mapping, load_params, section
from modelyard.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Inner:
    lr: float = 0.1
    names: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Outer:
    seed: int
    inner: Inner = field(default_factory=Inner)
    note: str | None = None


def test_builds_nested_dataclasses() -> None:
    cfg = from_mapping(Outer, {"seed": 3, "inner": {"lr": 1, "names": ["a"]}}, "train")
    assert cfg == Outer(seed=3, inner=Inner(lr=1.0, names=("a",)))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"seed": 1, "sede": 2}, r"train\.sede: unknown key"),
        ({"seed": "1"}, r"train\.seed: expected int"),
        ({"seed": True}, r"train\.seed: expected int"),
        ({"seed": 1, "inner": {"lr": "fast"}}, r"train\.inner\.lr: expected float"),
        ({"seed": 1, "inner": {"names": "a"}}, r"train\.inner\.names: expected a list"),
        ({}, r"train: .*seed"),
    ],
)
def test_bad_params_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping(Outer, raw, "train")


def test_params_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  seed: 7\n")
    assert section(load_params(path), "train", Outer).seed == 7
    with pytest.raises(ConfigError, match="section 'export' is missing"):
        section(load_params(path), "export", Outer)
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


def test_settings_from_env(tmp_path: Path) -> None:
    settings = Settings.from_env({"MODELYARD_HOME": str(tmp_path)})
    assert settings.pg_dir == tmp_path / "pg"
    assert settings.storage_url == str(tmp_path / "storage")
    assert settings.database_url is None
    assert Settings.from_env({"DATABASE_URL": "postgresql://x"}).database_url == "postgresql://x"
