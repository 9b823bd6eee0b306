"""Small synthetic images for tests: each name gives different pixels (so a different sha256)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> Path:
    seed = int.from_bytes(hashlib.sha256(path.name.encode()).digest()[:4], "little")
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path
