"""The demo dataset: simple objects composited onto crops of real photographs.

The photographs are the two sample images scikit-learn ships (no download). Each *camera*
(``group_key`` ``site-NN/cam-M``) looks at one region of one photograph, so images of the same
camera resemble each other — exactly what a group-aware split must keep together.

Classes, drawn with a tight box: ``car`` (a wide body on two wheels), ``person`` (a tall body
under a head) and ``sign`` (a triangle with a light border).

Labels, from stated rules:
- ``is_compliant`` is true iff the image contains no ``person``;
- ``label_value`` is a 0-5 rating, higher for brighter scenes and lower when a person is
  present, plus rater noise; ``rating_count`` (0-5) raters gave it (0 = unrated).
- ``scenario`` day | dusk | night scales brightness by 1.0 | 0.6 | 0.3.
Everything is drawn from ``numpy.random.default_rng([seed, index])``: the same seed gives the
same bytes on any machine with the same Pillow.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

CLASSES = ("car", "person", "sign")
SCENARIOS = {"day": 1.0, "dusk": 0.6, "night": 0.3}
STREAMS = ("front", "rear", "cabin")
ROAD_TYPES = ("urban", "highway", "rural")
COMPLIANCE_RULE = "is_compliant = the image contains no object of class 'person'"


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    count: int = 300
    size: int = 192
    seed: int = 0
    sites: int = 8
    cameras_per_site: int = 3
    max_objects: int = 4


@dataclass(frozen=True, kw_only=True)
class _Camera:
    group_key: str
    photo: int
    centre: tuple[int, int]
    side: int
    mirrored: bool
    stream: str
    road_type: str


def sample_photos() -> list[np.ndarray]:
    """The two photographs scikit-learn ships (no download), as RGB arrays."""
    from sklearn.datasets import load_sample_image

    return [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]


def _cameras(cfg: DemoConfig, photos: list[np.ndarray]) -> list[_Camera]:
    """Cameras take turns over the photographs and each gets its own tile of a grid laid over
    its photograph, mirrored or not: different cameras see different scenes (a group-aware
    split then has no near-duplicates to leak), while one camera's frames resemble each other."""
    rng = np.random.default_rng([cfg.seed, 1_000_000])
    n_cams = cfg.sites * cfg.cameras_per_site
    per_photo = -(-n_cams // len(photos))
    cols = int(np.ceil(np.sqrt(per_photo * 1.5)))
    rows = -(-per_photo // cols)
    tiles = [list(rng.permutation(rows * cols)) for _ in photos]
    cams = []
    for site in range(cfg.sites):
        road = ROAD_TYPES[site % len(ROAD_TYPES)]
        for cam in range(cfg.cameras_per_site):
            index = site * cfg.cameras_per_site + cam
            photo = index % len(photos)
            h, w = photos[photo].shape[:2]
            tile = int(tiles[photo].pop())
            r, c = divmod(tile, cols)
            side = min(h // rows, w // cols)
            centre = (int((c + 0.5) * w / cols), int((r + 0.5) * h / rows))
            cams.append(
                _Camera(
                    group_key=f"site-{site:02d}/cam-{cam}",
                    photo=photo,
                    centre=centre,
                    side=side,
                    mirrored=bool(rng.random() < 0.5),
                    stream=STREAMS[cam % len(STREAMS)],
                    road_type=road,
                )
            )
    return cams


def _background(
    photo: np.ndarray, cam: _Camera, size: int, rng: np.random.Generator
) -> Image.Image:
    h, w = photo.shape[:2]
    side = int(cam.side * rng.uniform(0.85, 1.0))
    jitter = max(1, cam.side // 12)
    cx = int(np.clip(cam.centre[0] + rng.integers(-jitter, jitter + 1), side // 2, w - side // 2))
    cy = int(np.clip(cam.centre[1] + rng.integers(-jitter, jitter + 1), side // 2, h - side // 2))
    crop = photo[cy - side // 2 : cy + side // 2, cx - side // 2 : cx + side // 2]
    if cam.mirrored:
        crop = crop[:, ::-1]
    return Image.fromarray(np.ascontiguousarray(crop)).resize(
        (size, size), Image.Resampling.BILINEAR
    )


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(40, 256, size=3))
    return r, g, b


def _draw(draw: ImageDraw.ImageDraw, name: str, box: list[int], rng: np.random.Generator) -> None:
    x, y, w, h = box
    if name == "car":
        draw.rounded_rectangle(
            [x, y, x + w - 1, y + int(h * 0.75)], radius=max(1, h // 5), fill=_colour(rng)
        )
        r = max(2, h // 4)
        for wx in (x + w // 4, x + 3 * w // 4):
            draw.ellipse([wx - r, y + h - 2 * r, wx + r - 1, y + h - 1], fill=(20, 20, 20))
    elif name == "person":
        head = max(3, w // 2)
        draw.ellipse(
            [x + (w - head) // 2, y, x + (w + head) // 2 - 1, y + head - 1], fill=(230, 190, 160)
        )
        draw.rounded_rectangle(
            [x, y + head, x + w - 1, y + h - 1], radius=max(1, w // 3), fill=_colour(rng)
        )
    else:
        points = [(x + w // 2, y), (x + w - 1, y + h - 1), (x, y + h - 1)]
        draw.polygon(points, fill=(235, 235, 235))
        inset = max(2, w // 6)
        inner = [
            (x + w // 2, y + inset * 2),
            (x + w - 1 - inset, y + h - 1 - inset),
            (x + inset, y + h - 1 - inset),
        ]
        draw.polygon(inner, fill=(220, 40, 30) if rng.random() < 0.5 else (240, 200, 20))


def _object_size(name: str, size: int, rng: np.random.Generator) -> tuple[int, int]:
    if name == "car":
        w = int(size * rng.uniform(0.22, 0.38))
        return w, int(w * rng.uniform(0.45, 0.6))
    if name == "person":
        h = int(size * rng.uniform(0.25, 0.4))
        return int(h * rng.uniform(0.3, 0.4)), h
    side = int(size * rng.uniform(0.12, 0.22))
    return side, side


def _iou(a: list[int], b: list[int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _place_objects(
    size: int, cfg: DemoConfig, rng: np.random.Generator
) -> list[tuple[str, list[int]]]:
    placed: list[tuple[str, list[int]]] = []
    for _ in range(int(rng.integers(1, cfg.max_objects + 1))):
        name = CLASSES[int(rng.integers(len(CLASSES)))]
        w, h = _object_size(name, size, rng)
        for _attempt in range(20):
            box = [int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1)), w, h]
            if all(_iou(box, other) < 0.2 for _, other in placed):
                placed.append((name, box))
                break
    return placed


def _image(
    index: int, cfg: DemoConfig, photos: list[np.ndarray], cams: list[_Camera]
) -> dict[str, Any]:
    rng = np.random.default_rng([cfg.seed, index])
    cam = cams[index % len(cams)]
    img = _background(photos[cam.photo], cam, cfg.size, rng)
    objects = _place_objects(cfg.size, cfg, rng)
    draw = ImageDraw.Draw(img)
    for name, box in objects:
        _draw(draw, name, box, rng)
    scenario = str(rng.choice(list(SCENARIOS), p=[0.6, 0.25, 0.15]))
    pixels = np.asarray(img, dtype=np.float32) * SCENARIOS[scenario]
    pixels += rng.normal(0, 4, pixels.shape)
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    has_person = any(name == "person" for name, _ in objects)
    rating = 5 * (0.35 + 0.65 * SCENARIOS[scenario]) - (0.8 if has_person else 0)
    rating = float(np.clip(round(rating + rng.normal(0, 0.4), 1), 0, 5))
    review = str(rng.choice(["approved", "pending", "rejected"], p=[0.92, 0.06, 0.02]))
    captured = datetime(2026, 1, 5, 6, tzinfo=UTC) + timedelta(minutes=17 * index)
    return {
        "image": img,
        "objects": objects,
        "entry": {
            "file_name": f"images/{index:05d}.jpg",
            "width": cfg.size,
            "height": cfg.size,
            "group_key": cam.group_key,
            "is_compliant": not has_person,
            "label_value": rating,
            "label_source": "demo-raters",
            "rating_count": int(rng.integers(0, 6)),
            "review_status": review,
            "metadata": {
                "stream": cam.stream,
                "scenario": scenario,
                "road_type": cam.road_type,
                "phase": "pilot" if index < cfg.count // 2 else "rollout",
                "captured_at": captured.isoformat(),
            },
        },
    }


def generate(out: Path, cfg: DemoConfig) -> Path:
    """Write ``out/images/*.jpg`` and ``out/annotations.json`` (COCO); returns the json path."""
    if cfg.count < 1 or cfg.size < 64:
        raise ValueError("the demo needs at least 1 image of at least 64 px")
    photos = sample_photos()
    cams = _cameras(cfg, photos)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(cfg.count):
        item = _image(index, cfg, photos, cams)
        item["image"].save(out / item["entry"]["file_name"], quality=92)
        images.append({"id": index + 1, **item["entry"]})
        for name, (x, y, w, h) in item["objects"]:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": CLASSES.index(name) + 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    doc = {
        "info": {
            "description": "modelyard demo dataset",
            "generator": "modelyard demo-data",
            "config": cfg.__dict__,
            "rules": {"is_compliant": COMPLIANCE_RULE},
        },
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)],
    }
    path = out / "annotations.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    log.info("wrote %d images and %d objects to %s", len(images), len(annotations), out)
    return path
