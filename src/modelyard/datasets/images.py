"""Reading an image file once: its bytes, sha256, decoded size and perceptual hash, or why it
cannot be used."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from modelyard.storage import sha256_bytes

# Refuse decompression bombs rather than let one image take the machine's memory.
MAX_PIXELS = 100_000_000


@dataclass(frozen=True, kw_only=True)
class ImageFacts:
    sha256: str
    width: int
    height: int
    format: str
    data: bytes
    dhash: str | None = None


def dhash_hex(img: Image.Image) -> str:
    """64-bit difference hash as 16 hex digits: grey 9x8 thumbnail, one bit per pair of
    horizontally adjacent pixels (left brighter than right). Survives rescaling, re-encoding
    and brightness changes, so near-identical photos land a few bits apart."""
    grey = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (grey[:, :-1] > grey[:, 1:]).flatten()
    return f"{int(np.packbits(bits).view('>u8')[0]):016x}"


def read_image(path: Path) -> ImageFacts | tuple[str, str]:
    """Read and fully decode ``path``; on failure return (reason, fix)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return (
            f"image file not found: {path.name}",
            "put the image next to the labels or fix the path",
        )
    except IsADirectoryError:
        return f"{path.name} is a folder, not an image", "point the record at an image file"
    except OSError as exc:
        return f"image cannot be read: {exc.strerror}", "check the file's permissions"
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                return f"image is {img.width}x{img.height}, over {MAX_PIXELS} pixels", (
                    "downscale the image before ingest"
                )
            img.load()
            width, height, fmt = img.width, img.height, img.format or "unknown"
            dhash = dhash_hex(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"image does not decode ({type(exc).__name__}: {exc})", (
            "re-export the image, or drop the record"
        )
    return ImageFacts(
        sha256=sha256_bytes(data), width=width, height=height, format=fmt, data=data, dhash=dhash
    )
