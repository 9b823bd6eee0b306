"""Generated canonical-6 corpora, for the tests and ``make predictor-demo``.

Each source (a clip) has a spatial complexity and a motion level; each codec encodes it at
every step of its cq ladder, and each encode is scored frame by frame. One latent distortion
per (source, cq, frame) drives everything a real corpus shows together: the quality
features (ADM2 and the four VIF scales fall as distortion rises), the encode's size (falls
with cq, rises with complexity and motion), its time, and VMAF. What the features cannot
explain is set per codec:

- ``noise``: VMAF points of per-row noise;
- ``source_effect``: VMAF points of a per-source offset (a clip that scores higher or lower
  than its features say) — the part only leave-one-source-out validation exposes.

With little of either a codec is learnable (fold PLCC about 0.99); with ``noise`` near 11
it is not (about 0.87), and a gate on it fails honestly. ``PRESET`` is the three codecs of
the predictor demo: one learnable, one noisy, one with only four sources.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.files import write_atomic


@dataclass(frozen=True, kw_only=True)
class CodecSpec:
    name: str
    sources: int = 9
    noise: float = 1.0  # VMAF points, per row
    source_effect: float = 0.5  # VMAF points, per source
    cq: tuple[int, ...] = (22, 26, 30, 34, 38, 42, 46, 50)
    frames: int = 12
    failed_encodes: int = 0  # rows with exit_status 1 (to be dropped by the reader)
    bad_rows: int = 0  # rows with a planted fault (to be rejected by the reader)


PRESET = (
    CodecSpec(name="libx265", noise=1.0, source_effect=0.5),
    CodecSpec(name="libvvenc", noise=15.0, source_effect=5.0),
    CodecSpec(name="libsvtav1", sources=4, noise=1.0, source_effect=0.5),
)

_FAULTS = (
    ("vmaf", "not-a-number"),
    ("adm2", float("nan")),
    ("encoder", "libx999"),
    ("enc_bytes", -5),
    ("motion2", None),
)


def generate(path: Path, specs: Sequence[CodecSpec], seed: int = 0) -> dict[str, Any]:
    """Write a corpus of ``specs`` to ``path`` (JSONL, atomically); what it holds."""
    rng = np.random.default_rng(seed)
    lines: list[str] = []
    summary: dict[str, Any] = {"path": str(path), "seed": seed, "codecs": {}}
    for spec in specs:
        rows = list(_codec_rows(spec, rng))
        for i in range(spec.failed_encodes):
            lines.append(json.dumps({**rows[i], "exit_status": 1, "vmaf": 0.0}))
        for i in range(spec.bad_rows):
            key, value = _FAULTS[i % len(_FAULTS)]
            lines.append(json.dumps({**rows[-1 - i], key: value, "frame_index": 10_000 + i}))
        lines += [json.dumps(r) for r in rows]
        summary["codecs"][spec.name] = {
            "rows": len(rows),
            "sources": spec.sources,
            "noise": spec.noise,
            "source_effect": spec.source_effect,
            "failed_encodes": spec.failed_encodes,
            "bad_rows": spec.bad_rows,
        }
    write_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return summary


def _codec_rows(spec: CodecSpec, rng: np.random.Generator) -> list[dict[str, Any]]:
    rows = []
    mid = float(np.mean(spec.cq))
    for s in range(spec.sources):
        complexity = rng.uniform(0.4, 1.6)
        motion = rng.uniform(0.5, 12.0)
        duration = float(rng.choice([5.0, 8.0, 10.0]))
        offset = rng.normal(0.0, 1.0) * spec.source_effect
        for cq in spec.cq:
            size = 1.5e6 * duration * complexity * (1 + motion / 12) * math.exp(-0.1 * (cq - mid))
            enc_bytes = int(size * rng.lognormal(0.0, 0.03))
            enc_time = enc_bytes / 2e3 * rng.lognormal(0.0, 0.1)
            for f in range(spec.frames):
                local = complexity * (1 + 0.15 * math.sin(f + s)) + rng.normal(0, 0.02)
                d = _sigmoid((cq - mid + 8 * (local - 1.0) + 0.3 * (motion - 6)) / 6)
                vmaf = 100 * (1 - d) ** 1.2 + offset + rng.normal(0, spec.noise)
                rows.append(
                    {
                        "src": f"clip{s:02d}",
                        "encoder": spec.name,
                        "cq": cq,
                        "enc_bytes": enc_bytes,
                        "enc_time_ms": round(enc_time, 2),
                        "frame_index": f,
                        "duration_s": duration,
                        "vmaf": round(float(np.clip(vmaf, 0, 100)), 4),
                        "adm2": round(1 - 0.3 * d + rng.normal(0, 0.004), 6),
                        **{
                            f"vif_scale{k}": round(
                                float(
                                    np.clip(
                                        0.98 * (1 - d) ** (0.4 + 0.3 * k) + rng.normal(0, 0.005),
                                        0,
                                        1,
                                    )
                                ),
                                6,
                            )
                            for k in range(4)
                        },
                        "motion2": round(motion * (1 + rng.normal(0, 0.05)), 4),
                    }
                )
    return rows


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))
