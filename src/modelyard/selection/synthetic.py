"""Generated decision databases with photos that carry a learnable signal.

Each group is a burst of 3-6 shots of one scene (a crop of one of scikit-learn's bundled
photographs) with one salient object on it (a bright disc). The shots differ in sharpness
(a Gaussian blur), exposure (a brightness factor; well exposed = mean luma near mid-grey)
and framing (a small shift). A person keeps the best shot — the sharpest and best exposed,
with some taste noise — and rejects the rest; a kept shot is sometimes cropped, to a box
around the salient object.

Each shot also has a ``stage`` (how far it got in the workflow, 1-4). By default it
correlates with the choice but does not decide it, so "always the highest stage" is a
baseline to beat, not a wall. With ``stage_decisive`` the kept shot is always the one at the
highest stage: that baseline is then perfect and no ranker can beat it by a margin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from modelyard.datasets.synthetic import sample_photos
from modelyard.selection import decisions

MID_GREY = 0.45  # the mean luma a well-exposed shot has


@dataclass(frozen=True, kw_only=True)
class SelectionConfig:
    groups: int = 200
    min_shots: int = 3
    max_shots: int = 6
    size: int = 96
    projects: tuple[str, ...] = ("proj-a", "proj-b")
    crop_rate: float = 0.7  # of the kept shots, the share a person cropped
    taste_noise: float = 0.15  # how far a person's choice strays from the best shot
    stage_decisive: bool = False
    seed: int = 0


def generate(out: Path, cfg: SelectionConfig) -> dict[str, Any]:
    """``out/decisions.db`` (version 3) and ``out/images/*.jpg``; what was written."""
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    photos = sample_photos()
    rows: list[dict[str, Any]] = []
    stage_is_kept = 0.0
    for g in range(cfg.groups):
        rng = np.random.default_rng([cfg.seed, g])
        group_rows, top_stage_kept = _group(g, cfg, photos, rng, images, len(rows))
        rows += group_rows
        stage_is_kept += top_stage_kept
    decisions.write_rows(out / "decisions.db", rows)
    return {
        "decisions": str(out / "decisions.db"),
        "images": str(images),
        "groups": cfg.groups,
        "rows": len(rows),
        "by_action": {
            a: sum(r["user_action"] == a for r in rows) for a in ("approve", "crop", "reject")
        },
        "highest_stage_baseline": round(stage_is_kept / cfg.groups, 3),
    }


def _group(
    g: int,
    cfg: SelectionConfig,
    photos: list[np.ndarray],
    rng: np.random.Generator,
    images: Path,
    first_id: int,
) -> tuple[list[dict[str, Any]], float]:
    project = cfg.projects[g % len(cfg.projects)]
    scene, (cx, cy, radius) = _scene(photos, cfg.size, rng)
    n = int(rng.integers(cfg.min_shots, cfg.max_shots + 1))
    blur = rng.uniform(0.0, 2.5, n)
    exposure = np.exp(rng.uniform(-0.7, 0.7, n))
    shifts = [rng.integers(-cfg.size // 16, cfg.size // 16 + 1, 2) for _ in range(n)]
    shots = [
        _shot(scene, float(blur[i]), float(exposure[i]), shifts[i], cfg.size) for i in range(n)
    ]
    # well exposed = mean luma near mid-grey, judged on the shot itself (as a person sees it)
    luma = np.asarray([np.asarray(s.convert("L"), np.float32).mean() / 255 for s in shots])
    quality = -blur - 2.0 * np.abs(np.log(luma / MID_GREY)) + rng.normal(0, cfg.taste_noise, n)
    kept = int(np.argmax(quality))
    if cfg.stage_decisive:
        order = np.argsort(np.argsort(quality))  # 0 = worst
        stage = 1 + np.minimum(3, (order * 4) // n)
        stage[kept] = 4
        stage[np.arange(n) != kept] = np.minimum(stage[np.arange(n) != kept], 3)
    else:
        z = (quality - quality.mean()) / (quality.std() + 1e-9)
        stage = np.clip(np.round(2.5 + 0.8 * z + rng.normal(0, 0.9, n)), 1, 4).astype(int)
    rows = []
    for i in range(n):
        shift = shifts[i]
        name = f"{project}_g{g:04d}_{i}.jpg"
        shots[i].save(images / name, quality=90)
        action, crop = "reject", None
        if i == kept:
            action = "crop" if rng.random() < cfg.crop_rate else "approve"
            if action == "crop":
                crop = _crop_around(cx - shift[0], cy - shift[1], radius, cfg.size, rng)
        rows.append(
            {
                "id": first_id + i + 1,
                "project_id": project,
                "group_id": f"{project}/burst-{g:04d}",
                "image_path": name,
                "image_width": cfg.size,
                "image_height": cfg.size,
                "user_action": action,
                "final_crop_coords": json.dumps(crop) if crop else None,
                "stage": int(stage[i]),
                "label": None,
                "decided_at": f"2026-11-{1 + g % 28:02d}T12:{i:02d}:00+00:00",
            }
        )
    top = int(np.max(stage))
    # "always the highest stage", ties broken at random: the chance it keeps the right shot
    top_kept = float(stage[kept] == top) / float(np.sum(stage == top))
    return rows, top_kept


def _scene(
    photos: list[np.ndarray], size: int, rng: np.random.Generator
) -> tuple[Image.Image, tuple[int, int, int]]:
    """A scene a little larger than a frame (so shifted frames have no empty borders) with
    one salient disc; the disc's centre and radius in the coordinates of a centred frame."""
    margin = size // 16
    full = size + 2 * margin
    for _ in range(20):  # a textured part of a photograph: a flat patch of sky repeats
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 3, min(h, w) // 2))
        x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
        patch = photo[y : y + side, x : x + side]
        if patch.std() > 25:
            break
    scene = Image.fromarray(np.ascontiguousarray(patch)).resize(
        (full, full), Image.Resampling.BILINEAR
    )
    radius = int(rng.integers(size // 10, size // 5))
    cx = int(rng.integers(radius + size // 8, size - radius - size // 8))
    cy = int(rng.integers(radius + size // 8, size - radius - size // 8))
    colour = tuple(int(v) for v in rng.integers(150, 256, 3))
    box = [cx - radius + margin, cy - radius + margin, cx + radius + margin, cy + radius + margin]
    ImageDraw.Draw(scene).ellipse(box, fill=colour)
    return scene, (cx, cy, radius)


def _shot(
    scene: Image.Image, blur: float, exposure: float, shift: np.ndarray, size: int
) -> Image.Image:
    """The frame at ``shift`` from the centre of the (larger) scene: no empty borders."""
    margin = (scene.size[0] - size) // 2
    x, y = margin + int(shift[0]), margin + int(shift[1])
    framed = scene.crop((x, y, x + size, y + size))
    soft = framed.filter(ImageFilter.GaussianBlur(blur)) if blur > 0.05 else framed
    return ImageEnhance.Brightness(soft).enhance(exposure)


def _crop_around(
    cx: float, cy: float, radius: int, size: int, rng: np.random.Generator
) -> list[float]:
    margin = radius * rng.uniform(1.6, 2.4)
    box = [cx - margin, cy - margin, cx + margin, cy + margin]
    box = [float(np.clip(v / size + rng.normal(0, 0.01), 0, 1)) for v in box]
    return [round(v, 4) for v in box]
