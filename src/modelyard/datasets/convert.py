"""Active manifests -> training layouts: COCO json per split, and a YOLO folder tree.

``coco/<split>.json`` names images by their path in the image cache (``images_root`` in the
file says where that is, relative to the json). ``yolo/images/<split>/`` holds hard links
into the cache (copies where the file system refuses), ``yolo/labels/<split>/*.txt`` one
``class cx cy w h`` line per object, normalised; ``yolo/data.yaml`` and ``classes.json``
give the class map.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from modelyard.datasets.records import SPLITS


def class_map(classes: tuple[str, ...]) -> dict[str, int]:
    return {name: i for i, name in enumerate(classes)}


def to_coco(manifest: pd.DataFrame, classes: tuple[str, ...], images_root: str) -> dict[str, Any]:
    ids = class_map(classes)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for n, row in enumerate(manifest.itertuples(index=False), start=1):
        images.append(
            {
                "id": n,
                "file_name": row.local_path,
                "width": int(row.width),
                "height": int(row.height),
                "sample_id": row.sample_id,
                "image_path": row.image_path,
            }
        )
        for obj in json.loads(row.objects or "[]"):
            x, y, w, h = obj["bbox"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": n,
                    "category_id": ids[obj["class"]] + 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    return {
        "images_root": images_root,
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(classes)],
    }


def yolo_lines(row: Any, ids: dict[str, int]) -> str:
    width, height = float(row.width), float(row.height)
    lines = []
    for obj in json.loads(row.objects or "[]"):
        x, y, w, h = obj["bbox"]
        cx, cy = (x + w / 2) / width, (y + h / 2) / height
        lines.append(f"{ids[obj['class']]} {cx:.6f} {cy:.6f} {w / width:.6f} {h / height:.6f}")
    return "".join(f"{line}\n" for line in lines)


def convert(
    manifests: dict[str, pd.DataFrame], classes: tuple[str, ...], images: Path, out: Path
) -> dict[str, int]:
    """Write both layouts under ``out`` (emptied first); returns images per split."""
    shutil.rmtree(out, ignore_errors=True)
    (out / "coco").mkdir(parents=True)
    ids = class_map(classes)
    counts = {}
    for split in SPLITS:
        frame = manifests[split]
        root = os.path.relpath(images.resolve(), (out / "coco").resolve())
        coco = to_coco(frame, classes, root)
        (out / "coco" / f"{split}.json").write_text(json.dumps(coco, indent=1) + "\n")
        img_dir, label_dir = out / "yolo" / "images" / split, out / "yolo" / "labels" / split
        img_dir.mkdir(parents=True)
        label_dir.mkdir(parents=True)
        for row in frame.itertuples(index=False):
            name = Path(row.local_path).name
            _link(images / row.local_path, img_dir / name)
            (label_dir / f"{Path(name).stem}.txt").write_text(yolo_lines(row, ids))
        counts[split] = len(frame)
    data = {
        "train": "images/train",
        "val": "images/validation",
        "test": "images/test",
        "names": dict(enumerate(classes)),
    }
    (out / "yolo" / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (out / "classes.json").write_text(json.dumps({"classes": list(classes)}, indent=2) + "\n")
    return counts


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
