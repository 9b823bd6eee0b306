"""What a reader returns: the records, the classes the source declares, orphan problems."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.datasets.records import Rejection, SourceRecord
from modelyard.errors import IngestError


@dataclass(kw_only=True)
class Source:
    records: list[SourceRecord]
    declared_classes: list[str] = field(default_factory=list)
    # problems that belong to no image record (an annotation pointing at no image, ...)
    orphans: list[Rejection] = field(default_factory=list)


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IngestError(f"{path}: no such file") from exc
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not UTF-8 text") from exc


# Fields a record may carry besides the image and its objects, shared by the readers.
EXTRA_FIELDS = (
    "split",
    "review_status",
    "is_compliant",
    "label_value",
    "label_source",
    "rating_count",
    "group_key",
    "is_augmented",
    "augmentation_type",
    "crop",
    "metadata",
)
