"""What every input format is read into, and what a rejected record looks like."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "validation", "test")
REVIEW_STATUSES = ("pending", "approved", "rejected")


@dataclass(frozen=True, kw_only=True)
class Rejection:
    """One reason a record was not ingested: which record, which field, why, and the fix."""

    record: str
    field: str
    reason: str
    fix: str
    image_path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "image_path": self.image_path,
            "field": self.field,
            "reason": self.reason,
            "fix": self.fix,
        }


@dataclass(kw_only=True)
class SourceRecord:
    """One image and its labels as a source file states them, before any check.

    Values are kept as the source gave them (``Any``): the checks decide what is legal.
    ``problems`` holds what the reader itself could not parse (field, reason, fix).
    """

    record: str
    image_path: Any
    root: Path
    width: Any = None
    height: Any = None
    objects: list[dict[str, Any]] = field(default_factory=list)
    is_compliant: Any = None
    split: Any = None
    review_status: Any = "pending"
    is_augmented: Any = False
    augmentation_type: Any = None
    group_key: Any = None
    label_value: Any = None
    label_source: Any = None
    rating_count: Any = None
    crop: Any = None
    metadata: Any = field(default_factory=dict)
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    def reject(self, field_name: str, reason: str, fix: str) -> Rejection:
        path = self.image_path if isinstance(self.image_path, str) else None
        return Rejection(
            record=self.record, field=field_name, reason=reason, fix=fix, image_path=path
        )
