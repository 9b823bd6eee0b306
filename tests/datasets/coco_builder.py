"""Build small COCO sources on disk, with real images, for ingest tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.images import write_image

CATEGORIES = [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}, {"id": 3, "name": "sign"}]


class CocoBuilder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.categories = list(CATEGORIES)

    def image(
        self,
        name: str,
        *,
        boxes: list[tuple[int, list[float]]] | None = None,
        write: bool = True,
        size: tuple[int, int] = (64, 48),
        **extra: Any,
    ) -> int:
        image_id = len(self.images) + 1
        if write:
            write_image(self.root / "images" / name, size=size)
        self.images.append(
            {
                "id": image_id,
                "file_name": f"images/{name}",
                "width": size[0],
                "height": size[1],
                "review_status": "approved",
                **extra,
            }
        )
        for category, bbox in boxes if boxes is not None else [(1, [4, 4, 20, 10])]:
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": bbox,
                }
            )
        return image_id

    def write(self) -> Path:
        path = self.root / "annotations.json"
        doc = {
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }
        path.write_text(json.dumps(doc))
        return path
