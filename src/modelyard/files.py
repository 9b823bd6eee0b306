"""Writing a local file so that a reader never sees half of it: write beside, then rename."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a sibling temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """Indented JSON (values it cannot encode as their ``str``), written atomically."""
    write_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))
