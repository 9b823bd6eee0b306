"""Cheap hand-crafted features of a photo, needing no weights: a colour histogram,
sharpness, exposure, and a perceptual hash.

``vector`` is, in order: 8 bins per RGB channel (24, each channel's bins sum to 1), then
brightness and contrast of the luma (scaled to [0, 1]), blur (log10(1 + variance of the
Laplacian), as the SDK measures it), the shares of pixels crushed to black (luma < 8) and
blown to white (luma > 247), sharpness (the Laplacian's variance over the luma's: blur with
exposure and contrast divided out), then a 4 x 4 grid of mean luma and one of mean
saturation (where in the frame the bright, colourful things are: what a crop is drawn
around). ``phash`` is the 64-bit DCT perceptual hash (hex): photos of one burst sit a few
bits apart.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from modelyard.sdk.imaging import qualities

BINS = 8
GRID = 4
NAMES = (
    *(f"hist_{c}{i}" for c in "rgb" for i in range(BINS)),
    "brightness",
    "contrast",
    "blur",
    "crushed",
    "blown",
    "sharpness",
    *(f"grid_luma{i}" for i in range(GRID * GRID)),
    *(f"grid_sat{i}" for i in range(GRID * GRID)),
)
SIZE = len(NAMES)


def vector(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    hist = [
        np.bincount(rgb[..., c].ravel() // (256 // BINS), minlength=BINS) / rgb[..., c].size
        for c in range(3)
    ]
    brightness, contrast, blur = qualities(image)
    luma = np.asarray(image.convert("L"), dtype=np.uint8)
    # blur rises with contrast and exposure (the Laplacian scales with intensity); sharpness
    # divides that out: the Laplacian's variance over the luma's
    sharpness = float(np.log10(1 + (10**blur - 1) / (contrast**2 + 1.0)))
    tail = [
        brightness / 255,
        contrast / 128,
        blur,
        float((luma < 8).mean()),
        float((luma > 247).mean()),
        sharpness,
    ]
    hsv = np.asarray(image.convert("HSV").resize((GRID, GRID), Image.Resampling.BOX), np.float32)
    grey = np.asarray(image.convert("L").resize((GRID, GRID), Image.Resampling.BOX), np.float32)
    grids = [grey.ravel() / 255, hsv[..., 1].ravel() / 255]
    out: np.ndarray = np.concatenate([*hist, np.asarray(tail), *grids]).astype(np.float32)
    return out


def phash(image: Image.Image) -> str:
    """64-bit DCT hash: the 8 x 8 low frequencies of a 32 x 32 grey image, above their median."""
    from scipy.fft import dctn

    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), np.float32)
    low = dctn(grey, norm="ortho")[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
